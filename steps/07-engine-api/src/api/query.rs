//! Query strings as docker's clients write them: booleans like Go's `strconv.ParseBool`
//! (docker-py sends `force=False`), filters as JSON.

use std::collections::{BTreeMap, HashMap};

pub type Query = axum::extract::Query<HashMap<String, String>>;

pub fn flag(query: &HashMap<String, String>, key: &str) -> bool {
    matches!(
        query.get(key).map(String::as_str),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True")
    )
}

pub fn number<T: std::str::FromStr>(query: &HashMap<String, String>, key: &str) -> Option<T> {
    query.get(key).and_then(|v| v.parse().ok())
}

/// `filters={"status":{"exited":true},"name":["x1"]}`: both shapes docker accepts.
pub fn filters(query: &HashMap<String, String>) -> Result<BTreeMap<String, Vec<String>>, String> {
    let Some(text) = query.get("filters").filter(|t| !t.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("invalid filters {text:?}: {e}"))?;
    let object = value
        .as_object()
        .ok_or_else(|| format!("invalid filters {text:?}: not an object"))?;
    let mut out = BTreeMap::new();
    for (key, values) in object {
        let list: Vec<String> = match values {
            serde_json::Value::Object(map) => map.keys().cloned().collect(),
            serde_json::Value::Array(items) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
            _ => return Err(format!("invalid filter {key:?}")),
        };
        out.insert(key.clone(), list);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_and_filters_parse_like_dockers() {
        let query: HashMap<String, String> = [
            ("force".to_owned(), "False".to_owned()),
            ("all".to_owned(), "1".to_owned()),
            (
                "filters".to_owned(),
                r#"{"status":{"exited":true},"name":["x1"]}"#.to_owned(),
            ),
        ]
        .into();
        assert!(!flag(&query, "force"));
        assert!(flag(&query, "all"));
        let parsed = filters(&query).expect("filters");
        assert_eq!(parsed["status"], ["exited"]);
        assert_eq!(parsed["name"], ["x1"]);
    }
}
