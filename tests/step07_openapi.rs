//! Step 07's OpenAPI document keeps up with its router: every route the engine registers
//! (`.route("...", get(..).post(..))` anywhere in `steps/07-engine-api/src/`) is a path of
//! `openapi.yaml` with each of its methods, and every documented path is one the engine
//! serves. Adding a route without documenting it fails here. No root needed.
//!
//! The workspace has no YAML parser, so the document is read line by line: it must keep the
//! block style it is written in (two spaces per level, `paths:` → path → method →
//! `responses:` → status code), and the checks below include the mistakes that make a YAML
//! parser refuse a file (tabs, `: ` inside a plain value, a plain value starting with a
//! reserved character, duplicate keys).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn step07() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("steps/07-engine-api")
}

/// A route as registered: its path (axum's syntax) and its methods (`any` for all).
#[derive(Debug)]
struct Route {
    path: String,
    methods: BTreeSet<String>,
    at: String,
}

impl Route {
    /// `/images/{*rest}` → `Some("/images/")`.
    fn wildcard_prefix(&self) -> Option<&str> {
        self.path.find("{*").map(|i| &self.path[..i])
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without `//` comments (a route named in a doc comment is not a route).
fn code_only(source: &str) -> String {
    let mut out = String::new();
    for line in source.lines() {
        let mut in_string = false;
        let mut escaped = false;
        let bytes = line.as_bytes();
        let mut end = line.len();
        for (i, &b) in bytes.iter().enumerate() {
            if in_string {
                match b {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => in_string = false,
                    _ => {}
                }
            } else if b == b'"' {
                in_string = true;
            } else if b == b'/' && bytes.get(i + 1) == Some(&b'/') {
                end = i;
                break;
            }
        }
        out.push_str(&line[..end]);
        out.push('\n');
    }
    out
}

/// The text of the call whose `(` is at `open`, up to its matching `)`.
fn call_arguments(code: &str, open: usize) -> &str {
    let bytes = code.as_bytes();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in bytes.iter().enumerate().skip(open) {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return &code[open + 1..i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses after byte {open}");
}

/// Identifiers directly followed by `(`: `get(a).head(b)` → get, head.
fn called_names(arguments: &str) -> Vec<&str> {
    let bytes = arguments.as_bytes();
    let mut names = Vec::new();
    let mut start = None;
    for (i, &b) in bytes.iter().enumerate() {
        let ident = b.is_ascii_alphanumeric() || b == b'_';
        match (ident, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                if b == b'(' {
                    names.push(&arguments[s..i]);
                }
                start = None;
            }
            _ => {}
        }
    }
    names
}

fn first_string_literal(text: &str) -> Option<&str> {
    let start = text.find('"')? + 1;
    let end = start + text[start..].find('"')?;
    Some(&text[start..end])
}

/// axum's old `:id` segments as `{id}`, so both spellings compare with OpenAPI's.
fn normalize(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment.strip_prefix(':') {
            Some(name) => format!("{{{name}}}"),
            None => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn routes() -> Vec<Route> {
    let mut files = Vec::new();
    rust_files(&step07().join("src"), &mut files);
    let mut routes = Vec::new();
    for file in files {
        let source = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let name = file.strip_prefix(step07()).unwrap_or(&file).display().to_string();
        routes.extend(routes_in(&name, &source));
    }
    routes
}

/// Every `.route("PATH", METHOD(handler).METHOD(handler))` of one source file.
fn routes_in(name: &str, source: &str) -> Vec<Route> {
    let code = code_only(source);
    assert!(
        !code.contains(".nest("),
        "{name} nests a router: teach tests/step07_openapi.rs to prefix its routes"
    );
    let mut routes = Vec::new();
    for (at, _) in code.match_indices(".route(") {
        let arguments = call_arguments(&code, at + ".route".len());
        let path = first_string_literal(arguments)
            .unwrap_or_else(|| panic!("{name}: a .route( whose path is not a string literal: {arguments}"));
        let after_path = &arguments[arguments.find(path).map_or(0, |i| i + path.len())..];
        let methods: BTreeSet<String> = called_names(after_path)
            .into_iter()
            .filter(|n| METHODS.contains(n) || *n == "any")
            .map(str::to_owned)
            .collect();
        let line = code[..at].lines().count().max(1);
        routes.push(Route {
            path: normalize(path),
            methods,
            at: format!("{name}:{line}"),
        });
    }
    routes
}

/// What the line-based reading of `openapi.yaml` found.
#[derive(Debug, Default)]
struct Document {
    top: Vec<String>,
    /// Path → its methods.
    paths: BTreeMap<String, BTreeSet<String>>,
    /// `schemas`, `responses`, `parameters`... → their names.
    components: BTreeMap<String, BTreeSet<String>>,
    refs: Vec<(usize, String)>,
    problems: Vec<String>,
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn unquote(key: &str) -> &str {
    key.trim_matches('"').trim_matches('\'')
}

/// Reads the document's block structure and notes what would make a YAML parser refuse it.
fn read_document(text: &str) -> Document {
    let mut doc = Document::default();
    // The keys seen at each indentation level under the current parents (duplicates).
    let mut keys_at: Vec<(usize, BTreeSet<String>)> = Vec::new();
    let mut block_scalar: Option<usize> = None; // the indentation of its key
    let (mut section, mut path, mut method, mut component_kind) =
        (String::new(), None::<String>, None::<String>, None::<String>);
    let mut method_has_responses = BTreeMap::<(String, String), bool>::new();
    let mut status_under: Option<(String, String)> = None;

    for (number, line) in text.lines().enumerate() {
        let number = number + 1;
        if line.contains('\t') {
            doc.problems
                .push(format!("line {number}: a tab (YAML indents with spaces only)"));
        }
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = indent_of(line);
        if let Some(key_indent) = block_scalar {
            if indent > key_indent {
                continue; // a line of a `|` or `>` text
            }
            block_scalar = None;
        }
        if indent & 1 == 1 {
            doc.problems.push(format!(
                "line {number}: indented by {indent} spaces, not a multiple of two"
            ));
        }
        while keys_at.last().is_some_and(|(i, _)| *i > indent) {
            keys_at.pop();
        }
        let item = trimmed.strip_prefix("- ").map(str::trim);
        let entry = item.unwrap_or(trimmed);
        let (key, value) = match entry.find(": ").or_else(|| entry.strip_suffix(':').map(|k| k.len())) {
            Some(colon) if !entry.starts_with('"') || entry[..colon].ends_with('"') => {
                (Some(unquote(&entry[..colon])), entry[colon + 1..].trim())
            }
            _ => (None, entry),
        };
        if key.is_none() && item.is_none() {
            doc.problems
                .push(format!("line {number}: neither `key: value` nor `- item`: {trimmed}"));
            continue;
        }
        if value.starts_with('|') || value.starts_with('>') {
            block_scalar = Some(indent);
        } else if !value.is_empty() {
            check_plain_value(number, value, &mut doc.problems);
        }
        if key == Some("$ref") {
            doc.refs.push((number, unquote(value).to_owned()));
        }
        let Some(key) = key else { continue };
        if item.is_none() {
            match keys_at.last_mut() {
                Some((i, keys)) if *i == indent => {
                    if !keys.insert(key.to_owned()) {
                        doc.problems.push(format!("line {number}: duplicate key {key:?}"));
                    }
                }
                _ => keys_at.push((indent, BTreeSet::from([key.to_owned()]))),
            }
        } else {
            // A list item starts a new mapping one level deeper.
            keys_at.push((indent + 2, BTreeSet::from([key.to_owned()])));
        }

        match indent {
            0 => {
                section = key.to_owned();
                doc.top.push(key.to_owned());
                (path, method, component_kind, status_under) = (None, None, None, None);
            }
            2 if section == "paths" => {
                if !key.starts_with('/') {
                    doc.problems
                        .push(format!("line {number}: path {key:?} does not start with /"));
                }
                doc.paths.entry(key.to_owned()).or_default();
                (path, method, status_under) = (Some(key.to_owned()), None, None);
            }
            2 if section == "components" => {
                component_kind = Some(key.to_owned());
                doc.components.entry(key.to_owned()).or_default();
            }
            4 if section == "paths" => {
                status_under = None;
                method = METHODS.contains(&key).then(|| key.to_owned());
                if let (Some(path), Some(method)) = (&path, &method) {
                    doc.paths.entry(path.clone()).or_default().insert(method.clone());
                    method_has_responses.insert((path.clone(), method.clone()), false);
                }
            }
            4 if section == "components" => {
                if let Some(kind) = &component_kind {
                    doc.components.entry(kind.clone()).or_default().insert(key.to_owned());
                }
            }
            6 if section == "paths" => {
                status_under = if key == "responses" {
                    path.clone().zip(method.clone())
                } else {
                    None
                };
            }
            8 if section == "paths" => {
                if let Some(at) = &status_under {
                    let status = key.parse::<u16>().is_ok_and(|s| (100..600).contains(&s)) || key == "default";
                    if status {
                        method_has_responses.insert(at.clone(), true);
                    } else {
                        doc.problems
                            .push(format!("line {number}: {key:?} under responses is not a status code"));
                    }
                }
            }
            _ => {}
        }
    }
    for ((path, method), has) in method_has_responses {
        if !has {
            doc.problems
                .push(format!("{method} {path}: no responses (status codes)"));
        }
    }
    doc
}

/// What YAML refuses (or silently changes) in an unquoted value.
fn check_plain_value(number: usize, value: &str, problems: &mut Vec<String>) {
    let first = value.chars().next().unwrap_or(' ');
    if first == '"' || first == '\'' {
        let quote = first;
        if value.len() < 2 || !value.ends_with(quote) {
            problems.push(format!(
                "line {number}: a quoted value that does not end with its quote: {value}"
            ));
        }
        return;
    }
    if first == '[' || first == '{' {
        let close = if first == '[' { ']' } else { '}' };
        if !value.ends_with(close) {
            problems.push(format!(
                "line {number}: a flow collection not closed on its line: {value}"
            ));
        }
        return;
    }
    if matches!(first, '`' | '@' | '%' | '&' | '*' | '!' | '|' | '>') {
        problems.push(format!(
            "line {number}: a plain value may not start with {first:?}: quote it: {value}"
        ));
    }
    if value.contains(": ") || value.ends_with(':') {
        problems.push(format!("line {number}: `: ` inside a plain value: quote it: {value}"));
    }
    if value.contains(" #") {
        problems.push(format!(
            "line {number}: ` #` starts a comment in a plain value (the rest is lost): quote it: {value}"
        ));
    }
}

fn document() -> Document {
    let path = step07().join("openapi.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    read_document(&text)
}

#[test]
fn the_document_is_well_formed_openapi() {
    let doc = document();
    assert!(
        doc.problems.is_empty(),
        "openapi.yaml:\n  {}",
        doc.problems.join("\n  ")
    );
    for key in ["openapi", "info", "paths", "components"] {
        assert!(
            doc.top.iter().any(|k| k == key),
            "openapi.yaml has no top-level `{key}:`"
        );
    }
    let text = std::fs::read_to_string(step07().join("openapi.yaml")).expect("openapi.yaml");
    assert!(
        text.lines().any(|l| l.starts_with("openapi: 3.")),
        "openapi.yaml does not say `openapi: 3.x`"
    );
    for (path, methods) in &doc.paths {
        assert!(!methods.is_empty(), "openapi.yaml: {path} documents no method");
    }
    let mut dangling = Vec::new();
    for (line, reference) in &doc.refs {
        let target = reference
            .strip_prefix("#/components/")
            .and_then(|rest| rest.split_once('/'));
        let found =
            target.is_some_and(|(kind, name)| doc.components.get(kind).is_some_and(|names| names.contains(name)));
        if !found {
            dangling.push(format!("line {line}: $ref {reference} names nothing in components"));
        }
    }
    assert!(dangling.is_empty(), "openapi.yaml:\n  {}", dangling.join("\n  "));
    assert!(
        doc.components
            .get("schemas")
            .is_some_and(|s| s.contains("ErrorResponse")),
        "openapi.yaml: components.schemas.ErrorResponse (docker's {{\"message\": ...}}) is missing"
    );
}

/// Routes that openapi.yaml does not document (or not with all their methods).
fn undocumented(routes: &[Route], doc: &Document) -> Vec<String> {
    let mut missing = Vec::new();
    for route in routes {
        if let Some(prefix) = route.wildcard_prefix() {
            // `/images/{*rest}` serves names with slashes; its documented forms are
            // `/images/{name}/json` and so on.
            if !doc
                .paths
                .keys()
                .any(|p| p.starts_with(prefix) && p.len() > prefix.len())
            {
                missing.push(format!(
                    "{}: nothing documented under {prefix} for {}",
                    route.at, route.path
                ));
            }
            continue;
        }
        let Some(documented) = doc.paths.get(&route.path) else {
            missing.push(format!("{}: {} is not in openapi.yaml's paths", route.at, route.path));
            continue;
        };
        for method in &route.methods {
            if method != "any" && !documented.contains(method) {
                missing.push(format!(
                    "{}: {} {} is not documented (openapi.yaml has {documented:?})",
                    route.at,
                    method.to_uppercase(),
                    route.path
                ));
            }
        }
    }
    missing
}

/// Documented paths and methods that no route serves.
fn unserved(routes: &[Route], doc: &Document) -> Vec<String> {
    let mut unserved = Vec::new();
    for (path, methods) in &doc.paths {
        if let Some(route) = routes.iter().find(|r| r.path == *path) {
            for method in methods {
                // axum answers HEAD for every GET route.
                let served = route.methods.contains(method)
                    || route.methods.contains("any")
                    || (method == "head" && route.methods.contains("get"));
                if !served {
                    unserved.push(format!(
                        "{} {path}: documented, but the route at {} has no such method",
                        method.to_uppercase(),
                        route.at
                    ));
                }
            }
            continue;
        }
        let by_wildcard = routes
            .iter()
            .any(|r| r.wildcard_prefix().is_some_and(|prefix| path.starts_with(prefix)));
        if !by_wildcard {
            unserved.push(format!("{path}: documented, but no route serves it"));
        }
    }
    unserved
}

#[test]
fn every_route_is_documented_with_its_methods() {
    let routes = routes();
    assert!(
        routes.iter().any(|r| r.path == "/containers/create") && routes.iter().any(|r| r.path == "/images/json"),
        "the routes of api/mod.rs and api/images.rs were not found: has the router moved? {routes:?}"
    );
    let missing = undocumented(&routes, &document());
    assert!(
        missing.is_empty(),
        "routes missing from steps/07-engine-api/openapi.yaml:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn every_documented_path_is_served() {
    let extra = unserved(&routes(), &document());
    assert!(
        extra.is_empty(),
        "openapi.yaml documents what the engine does not serve:\n  {}",
        extra.join("\n  ")
    );
}

#[test]
fn a_new_route_or_method_without_documentation_is_caught() {
    let router = std::fs::read_to_string(step07().join("src/api/mod.rs")).expect("api/mod.rs");
    let grown = router
        .replacen(
            "Router::new()",
            "Router::new()\n        .route(\"/containers/{id}/pause\", post(lifecycle::pause))",
            1,
        )
        .replacen(
            "get(system::version)",
            "get(system::version).delete(system::version)",
            1,
        );
    assert_ne!(
        grown, router,
        "api/mod.rs no longer has `Router::new()` and `get(system::version)`"
    );
    let missing = undocumented(&routes_in("api/mod.rs", &grown), &document()).join("\n");
    assert!(
        missing.contains("/containers/{id}/pause is not in openapi.yaml"),
        "{missing}"
    );
    assert!(missing.contains("DELETE /version is not documented"), "{missing}");
}

#[test]
fn the_readers_of_this_test_work() {
    let code =
        code_only("  .route(\"/a/{id}\", get(x).head(y)) // .route(\"/b\", post(z))\n  // .route(\"/c\", get(c))\n");
    assert!(!code.contains("/b") && !code.contains("/c"));
    let open = code.find(".route(").expect("route") + ".route".len();
    let arguments = call_arguments(&code, open);
    assert_eq!(first_string_literal(arguments), Some("/a/{id}"));
    assert_eq!(called_names(arguments), ["get", "head"]);
    assert_eq!(normalize("/containers/:id/json"), "/containers/{id}/json");

    let doc = read_document(
        "openapi: 3.0.3\npaths:\n  /a:\n    get:\n      responses:\n        \"200\":\n          description: ok\n  /a:\n    post:\n      summary: `x` y\n",
    );
    let problems = doc.problems.join("\n");
    assert!(problems.contains("duplicate key \"/a\""), "{problems}");
    assert!(problems.contains("may not start with '`'"), "{problems}");
    assert!(problems.contains("post /a: no responses"), "{problems}");
}
