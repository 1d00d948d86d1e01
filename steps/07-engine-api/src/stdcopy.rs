//! Docker's stdcopy framing for non-tty streams (attach, exec, logs): an 8-byte header —
//! stream (0 stdin, 1 stdout, 2 stderr), three zero bytes, the payload's length as a
//! big-endian u32 — then the payload. The client picks framed or raw by the container's
//! `Tty`, never by the Content-Type.

pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;

// ANCHOR: frame
/// One frame holding `payload`.
pub fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&[stream, 0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}
// ANCHOR_END: frame

/// Splits whole frames off the front of `buffer`; a partial frame stays for the next read.
pub fn take_frames(buffer: &mut Vec<u8>) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    loop {
        if buffer.len() < 8 {
            break;
        }
        let length = u32::from_be_bytes([buffer[4], buffer[5], buffer[6], buffer[7]]) as usize;
        if buffer.len() < 8 + length {
            break;
        }
        let payload = buffer[8..8 + length].to_vec();
        frames.push((buffer[0], payload));
        buffer.drain(..8 + length);
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_across_split_reads() {
        let mut wire = frame(STDOUT, b"out\n");
        wire.extend(frame(STDERR, b"err\n"));
        assert_eq!(&wire[..8], &[1, 0, 0, 0, 0, 0, 0, 4]);
        let mut buffer = wire[..14].to_vec();
        assert_eq!(take_frames(&mut buffer), vec![(STDOUT, b"out\n".to_vec())]);
        buffer.extend_from_slice(&wire[14..]);
        assert_eq!(take_frames(&mut buffer), vec![(STDERR, b"err\n".to_vec())]);
        assert!(buffer.is_empty());
    }
}
