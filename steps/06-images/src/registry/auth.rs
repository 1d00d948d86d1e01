//! Authentication the way Docker Hub and the distribution registry do it.
//!
//! A registry that wants credentials answers 401 with a challenge in `WWW-Authenticate`:
//!
//! - `Basic realm="..."`: send the user and password with every request (HTTP basic auth).
//! - `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="..."`:
//!   ask the token server at `realm` for a token that may pull this repository (anonymous
//!   pulls get one too, without credentials), then send `Authorization: Bearer <token>`.
//!
//! Tokens are per repository, so the client keeps one per repository and the parallel
//! layer downloads reuse the one the manifest request got.

use std::collections::HashMap;
use std::sync::Mutex;

use reqwest::blocking::{Client, RequestBuilder};

use super::RegistryError;

/// One challenge: the scheme (lower case) and its parameters (keys lower case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a `WWW-Authenticate` value (RFC 7235): one or more challenges, each a scheme and
/// `key=value` parameters separated by commas; a value is a token or a quoted string, which
/// may hold commas (`scope="repository:a/b:pull,push"`) and backslash escapes.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let bytes = header.as_bytes();
    let mut at = 0;
    let mut challenges: Vec<Challenge> = Vec::new();
    let skip = |at: &mut usize, what: &[u8]| {
        while *at < bytes.len() && what.contains(&bytes[*at]) {
            *at += 1;
        }
    };
    let token = |at: &mut usize| -> String {
        let start = *at;
        while *at < bytes.len() && !b" \t,=\"".contains(&bytes[*at]) {
            *at += 1;
        }
        header[start..*at].to_owned()
    };
    loop {
        skip(&mut at, b" \t,");
        let word = token(&mut at);
        if word.is_empty() {
            // Nothing more, or a stray character where a word should start.
            if at >= bytes.len() {
                break;
            }
            at += 1;
            continue;
        }
        let mut after = at;
        skip(&mut after, b" \t");
        let is_param = after < bytes.len() && bytes[after] == b'=' && !challenges.is_empty();
        if !is_param {
            challenges.push(Challenge {
                scheme: word.to_ascii_lowercase(),
                params: Vec::new(),
            });
            continue;
        }
        at = after + 1;
        skip(&mut at, b" \t");
        let value = if at < bytes.len() && bytes[at] == b'"' {
            at += 1;
            let mut value = String::new();
            let mut chars = header[at..].char_indices();
            let mut end = header.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        end = at + i + 1;
                        break;
                    }
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    c => value.push(c),
                }
            }
            at = end;
            value
        } else {
            token(&mut at)
        };
        if let Some(challenge) = challenges.last_mut() {
            challenge.params.push((word.to_ascii_lowercase(), value));
        }
    }
    challenges
}

/// What to send with a request once a challenge has been answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    Bearer(String),
    Basic,
}

/// The answers, per repository (`host/repository`), shared by the download threads.
#[derive(Debug, Default)]
pub struct AuthCache {
    answers: Mutex<HashMap<String, Auth>>,
}

impl AuthCache {
    pub fn get(&self, key: &str) -> Option<Auth> {
        // A panic elsewhere while holding the lock leaves a map that is still valid.
        let answers = self.answers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        answers.get(key).cloned()
    }

    pub fn put(&self, key: &str, auth: Auth) {
        let mut answers = self.answers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        answers.insert(key.to_owned(), auth);
    }
}

/// Adds what `auth` says to a request.
pub fn apply(request: RequestBuilder, auth: Option<&Auth>, credentials: Option<&(String, String)>) -> RequestBuilder {
    match (auth, credentials) {
        (Some(Auth::Bearer(token)), _) => request.bearer_auth(token),
        (Some(Auth::Basic), Some((user, password))) => request.basic_auth(user, Some(password)),
        _ => request,
    }
}

/// Who is asking and for what, for the token request and the error messages.
pub struct Asker<'a> {
    pub http: &'a Client,
    pub credentials: Option<&'a (String, String)>,
    /// `host/repository`, as errors name it.
    pub name: &'a str,
    pub repository: &'a str,
    /// The access asked for: `pull`, or `pull,push` for a push.
    pub actions: &'a str,
}

/// Answers the challenges of a 401: a token for Bearer, the credentials for Basic.
pub fn answer(asker: &Asker<'_>, headers: &[String]) -> Result<Auth, RegistryError> {
    let challenges: Vec<Challenge> = headers.iter().flat_map(|h| parse_challenges(h)).collect();
    // Bearer first: with it, the password goes to the token server only.
    if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
        return token(asker, bearer).map(Auth::Bearer);
    }
    if challenges.iter().any(|c| c.scheme == "basic") {
        return match asker.credentials {
            Some(_) => Ok(Auth::Basic),
            None => Err(RegistryError::Unauthorized {
                name: asker.name.to_owned(),
            }),
        };
    }
    let why = match challenges.first() {
        Some(other) => format!("unsupported authentication scheme {:?}", other.scheme),
        None => "the registry answered 401 without a WWW-Authenticate challenge".to_owned(),
    };
    Err(RegistryError::BadChallenge {
        name: asker.name.to_owned(),
        why,
    })
}

/// The token server's URL for `actions` (`pull`, `pull,push`) on `repository`.
pub fn token_url(challenge: &Challenge, repository: &str, actions: &str) -> Result<reqwest::Url, String> {
    let realm = challenge.param("realm").ok_or("the Bearer challenge has no realm")?;
    let mut url = reqwest::Url::parse(realm).map_err(|e| format!("the realm {realm:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("the realm {realm:?} is not an http(s) URL"));
    }
    {
        let mut query = url.query_pairs_mut();
        if let Some(service) = challenge.param("service") {
            query.append_pair("service", service);
        }
        // Our own scope rather than the challenge's: the access the whole pull (or push)
        // needs to this repository, whatever request the challenge came from.
        query.append_pair("scope", &format!("repository:{repository}:{actions}"));
    }
    Ok(url)
}

/// The token in a token server's answer: `token`, or OAuth2's `access_token`.
pub fn token_of(body: &[u8]) -> Result<String, String> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    ["token", "access_token"]
        .iter()
        .filter_map(|key| value[key].as_str())
        .find(|token| !token.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| "the answer has no token".to_owned())
}

// ANCHOR: token
/// Gets a token for the repository (pull, or pull and push) from the challenge's realm, with
/// the credentials (basic auth) when there are some.
fn token(asker: &Asker<'_>, challenge: &Challenge) -> Result<String, RegistryError> {
    let realm = challenge.param("realm").unwrap_or_default().to_owned();
    let bad = |why: String| RegistryError::Token {
        name: asker.name.to_owned(),
        realm: realm.clone(),
        why,
    };
    let url = token_url(challenge, asker.repository, asker.actions).map_err(|why| RegistryError::BadChallenge {
        name: asker.name.to_owned(),
        why,
    })?;
    let mut request = asker.http.get(url);
    if let Some((user, password)) = asker.credentials {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().map_err(|e| bad(super::error::cause(&e)))?;
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(match asker.credentials {
            Some((user, _)) => RegistryError::Denied {
                name: asker.name.to_owned(),
                user: user.clone(),
            },
            None => RegistryError::Unauthorized {
                name: asker.name.to_owned(),
            },
        });
    }
    if !status.is_success() {
        return Err(bad(format!("it answered {status}")));
    }
    // A token answer is small; a huge one is not a token server.
    let body = super::client::read_limited(response, 1 << 20).map_err(|e| bad(e.to_string()))?;
    token_of(&body).map_err(bad)
}
// ANCHOR_END: token

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hubs_challenge() {
        let header = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#;
        let challenges = parse_challenges(header);
        assert_eq!(challenges.len(), 1);
        let c = &challenges[0];
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c.param("service"), Some("registry.docker.io"));
        assert_eq!(c.param("scope"), Some("repository:library/busybox:pull"));
    }

    #[test]
    fn quoted_commas_spaces_escapes_and_case() {
        let header = r#"bearer  Realm = "https://h/t?a=1,b=2" , scope="repository:a/b:pull,push",error=insufficient_scope, note="say \"hi\"""#;
        let c = &parse_challenges(header)[0];
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://h/t?a=1,b=2"));
        assert_eq!(c.param("scope"), Some("repository:a/b:pull,push"));
        assert_eq!(c.param("error"), Some("insufficient_scope"));
        assert_eq!(c.param("note"), Some(r#"say "hi""#));
    }

    #[test]
    fn basic_and_several_challenges_in_one_header() {
        let c = parse_challenges(r#"Basic realm="keel-test""#);
        assert_eq!(
            c,
            [Challenge {
                scheme: "basic".into(),
                params: vec![("realm".into(), "keel-test".into())]
            }]
        );
        let c = parse_challenges(r#"Basic realm="a, b", Bearer realm="https://t/token",service=reg"#);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].param("realm"), Some("a, b"));
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("service"), Some("reg"));
        assert!(parse_challenges("").is_empty());
        // An unterminated quote takes the rest rather than failing.
        assert_eq!(
            parse_challenges(r#"Bearer realm="https://t"#)[0].param("realm"),
            Some("https://t")
        );
    }

    #[test]
    fn the_token_url_asks_for_this_repository_and_the_access_needed() {
        let c = &parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:other:push""#,
        )[0];
        let url = token_url(c, "library/busybox", "pull").expect("url");
        assert_eq!(
            url.as_str(),
            "https://auth.docker.io/token?service=registry.docker.io&scope=repository%3Alibrary%2Fbusybox%3Apull"
        );
        let url = token_url(c, "keel/app", "pull,push").expect("url");
        assert!(
            url.as_str().ends_with("scope=repository%3Akeel%2Fapp%3Apull%2Cpush"),
            "{url}"
        );
        let no_realm = &parse_challenges(r#"Bearer service="x""#)[0];
        assert!(token_url(no_realm, "a", "pull").is_err());
        let not_http = &parse_challenges(r#"Bearer realm="file:///etc/passwd""#)[0];
        assert!(token_url(not_http, "a", "pull").is_err());
    }

    #[test]
    fn tokens_come_as_token_or_access_token() {
        assert_eq!(token_of(br#"{"token":"abc","expires_in":300}"#), Ok("abc".into()));
        assert_eq!(token_of(br#"{"access_token":"xyz"}"#), Ok("xyz".into()));
        assert_eq!(token_of(br#"{"token":"","access_token":"xyz"}"#), Ok("xyz".into()));
        assert!(token_of(br#"{"nothing":1}"#).is_err());
        assert!(token_of(b"<html>").is_err());
    }

    #[test]
    fn basic_without_credentials_asks_for_them() {
        let http = Client::new();
        let asker = Asker {
            http: &http,
            credentials: None,
            name: "localhost:5000/x",
            repository: "x",
            actions: "pull",
        };
        let e = answer(&asker, &[r#"Basic realm="r""#.to_owned()]).expect_err("no credentials");
        assert_eq!(
            e.to_string(),
            "localhost:5000/x: unauthorized: give --user USER:PASSWORD"
        );
        let credentials = ("u".to_owned(), "p".to_owned());
        let asker = Asker {
            credentials: Some(&credentials),
            ..asker
        };
        assert_eq!(
            answer(&asker, &[r#"Basic realm="r""#.to_owned()]).expect("basic"),
            Auth::Basic
        );
        let e = answer(&asker, &[]).expect_err("no challenge");
        assert!(e.to_string().contains("without a WWW-Authenticate challenge"), "{e}");
    }

    #[test]
    fn the_cache_keeps_one_answer_per_repository() {
        let cache = AuthCache::default();
        cache.put("h/a", Auth::Bearer("t1".into()));
        cache.put("h/b", Auth::Basic);
        assert_eq!(cache.get("h/a"), Some(Auth::Bearer("t1".into())));
        assert_eq!(cache.get("h/b"), Some(Auth::Basic));
        assert_eq!(cache.get("h/c"), None);
    }
}
