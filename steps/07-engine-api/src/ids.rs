//! Container and exec ids (64 hex digits, as docker's) and container names.

use std::io::Read;

/// A new random id: 32 bytes from the kernel's random pool, in hex.
pub fn new_id() -> String {
    let mut bytes = [0u8; 32];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // Never expected on Linux; time and pid still make collisions unlikely on one machine.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes[..16].copy_from_slice(&nanos.to_le_bytes());
        bytes[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// docker's rule for names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (so at least two characters).
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() >= 2
        && bytes[0].is_ascii_alphanumeric()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(b))
}

const ADJECTIVES: &[&str] = &[
    "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid", "merry", "nimble", "proud",
    "quiet", "rapid", "sharp", "tender", "upbeat", "vivid", "witty", "zealous",
];
const NAMES: &[&str] = &[
    "babbage", "curie", "dijkstra", "euler", "fermat", "gauss", "hopper", "hypatia", "kepler", "knuth", "lamport",
    "lovelace", "noether", "pascal", "ritchie", "shannon", "thompson", "torvalds", "turing", "wozniak",
];

/// A name like docker's `happy_turing`, from the id's first bytes.
pub fn generated_name(id: &str, attempt: usize) -> String {
    let byte = |i: usize| usize::from_str_radix(id.get(i * 2..i * 2 + 2).unwrap_or("00"), 16).unwrap_or(0);
    let adjective = ADJECTIVES[(byte(0) + attempt) % ADJECTIVES.len()];
    let name = NAMES[(byte(1) + attempt / ADJECTIVES.len()) % NAMES.len()];
    if attempt >= ADJECTIVES.len() * NAMES.len() {
        format!("{adjective}_{name}{attempt}")
    } else {
        format!("{adjective}_{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_digits_and_differ() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn names_follow_dockers_rule() {
        assert!(valid_name("x1"));
        assert!(valid_name("web.1_a-b"));
        assert!(!valid_name("x"));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a/b"));
        assert!(valid_name(&generated_name(&new_id(), 3)));
    }
}
