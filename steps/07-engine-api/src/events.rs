//! `docker events`: what happened to containers and images, as it happens, plus the last
//! thousand for `--since`.

use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use tokio::sync::broadcast;

const KEPT: usize = 1000;

#[derive(Debug, Clone, Serialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

/// One event in dockerd's shape (with the old `status`/`id`/`from` fields the CLI still reads).
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub status: String,
    pub id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub from: String,
    #[serde(rename = "Type")]
    pub typ: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

pub struct Events {
    sender: broadcast::Sender<Event>,
    recent: Mutex<VecDeque<Event>>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(256).0,
            recent: Mutex::new(VecDeque::new()),
        }
    }
}

impl Events {
    /// Records an event about `id` (a container or an image).
    pub fn emit(&self, typ: &str, action: &str, id: &str, attributes: BTreeMap<String, String>) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        let from = attributes.get("image").cloned().unwrap_or_default();
        let event = Event {
            status: action.to_owned(),
            id: id.to_owned(),
            from,
            typ: typ.to_owned(),
            action: action.to_owned(),
            actor: Actor {
                id: id.to_owned(),
                attributes,
            },
            scope: "local".into(),
            time: nanos / 1_000_000_000,
            time_nano: nanos,
        };
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() == KEPT {
                recent.pop_front();
            }
            recent.push_back(event.clone());
        }
        let _ = self.sender.send(event);
    }

    /// The kept events, oldest first, and a receiver for those that follow.
    pub fn subscribe(&self) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let receiver = self.sender.subscribe();
        let recent = self
            .recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default();
        (recent, receiver)
    }
}
