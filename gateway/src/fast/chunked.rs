//! A back-end's chunked response body, decoded as it streams and chunked again for the client,
//! as pingora does: chunk extensions and trailers do not pass, and a malformed or oversized
//! framing line stops the response instead of reaching the browser.

use std::io::Write as _;

/// The longest chunk-size line (with extensions) or trailer section accepted.
const MAX_LINE: usize = 4096;

/// The body is not valid chunked framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line.
    Size,
    /// This many data bytes left in the chunk.
    Data(u64),
    /// The CR, then the LF, after a chunk's data.
    DataCr,
    DataLf,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
    /// The body is complete.
    Done,
}

/// The decoder of one body.
#[derive(Debug)]
pub struct Dechunk {
    state: State,
    /// The framing line being read (size line or trailer section).
    line: Vec<u8>,
    /// Bytes of the trailer section so far.
    trailers: usize,
}

impl Default for Dechunk {
    fn default() -> Self {
        Self {
            state: State::Size,
            line: Vec::new(),
            trailers: 0,
        }
    }
}

impl Dechunk {
    /// Whether the whole body was read.
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes what `input` holds and appends it, chunked again, to `out`. Returns how many
    /// bytes of `input` belong to the body: after the end, the rest is not this body's.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, Malformed> {
        let mut at = 0;
        while at < input.len() {
            match self.state {
                State::Done => break,
                State::Size => {
                    at += self.take_line(&input[at..])?;
                    if !self.line.ends_with(b"\n") {
                        continue;
                    }
                    let Ok(httparse::Status::Complete((_, size))) =
                        httparse::parse_chunk_size(&self.line)
                    else {
                        return Err(Malformed);
                    };
                    self.line.clear();
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    let n = (input.len() - at).min(usize::try_from(left).unwrap_or(usize::MAX));
                    encode(&input[at..at + n], out);
                    at += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data(left)
                    };
                }
                State::DataCr => {
                    if input[at] != b'\r' {
                        return Err(Malformed);
                    }
                    at += 1;
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if input[at] != b'\n' {
                        return Err(Malformed);
                    }
                    at += 1;
                    self.state = State::Size;
                }
                State::Trailers => {
                    at += self.take_line(&input[at..])?;
                    if !self.line.ends_with(b"\n") {
                        continue;
                    }
                    if !self.line.ends_with(b"\r\n") {
                        return Err(Malformed);
                    }
                    let empty = self.line.len() == 2;
                    self.trailers += self.line.len();
                    self.line.clear();
                    if self.trailers > MAX_LINE {
                        return Err(Malformed);
                    }
                    if empty {
                        out.extend_from_slice(b"0\r\n\r\n");
                        self.state = State::Done;
                    }
                }
            }
        }
        Ok(at)
    }

    /// Adds `input` to the framing line, up to and with its LF when it has one; returns how
    /// many bytes it took. The line is complete when it ends with LF.
    fn take_line(&mut self, input: &[u8]) -> Result<usize, Malformed> {
        let part = match input.iter().position(|b| *b == b'\n') {
            Some(lf) => &input[..=lf],
            None => input,
        };
        if self.line.len() + part.len() > MAX_LINE {
            return Err(Malformed);
        }
        self.line.extend_from_slice(part);
        Ok(part.len())
    }
}

/// Appends `data` to `out` as one chunk (nothing for no data: an empty chunk would end the
/// body).
pub fn encode(data: &[u8], out: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The chunk that ends a body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes what a chunked body carries (the test's own reference reader).
    fn payload(chunked: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = chunked;
        loop {
            let lf = rest.iter().position(|b| *b == b'\n').expect("size line");
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..lf - 1]).expect("ascii"), 16)
                    .expect("hex");
            rest = &rest[lf + 1..];
            if size == 0 {
                assert_eq!(rest, b"\r\n");
                return out;
            }
            out.extend_from_slice(&rest[..size]);
            assert_eq!(&rest[size..size + 2], b"\r\n");
            rest = &rest[size + 2..];
        }
    }

    fn run(input: &[u8], split: usize) -> Result<(Vec<u8>, usize, bool), Malformed> {
        let mut d = Dechunk::default();
        let mut out = Vec::new();
        let mut used = 0;
        for part in input.chunks(split.max(1)) {
            used += d.feed(part, &mut out)?;
            if d.done() {
                break;
            }
        }
        Ok((out, used, d.done()))
    }

    #[test]
    fn bodies_decode_in_any_split_and_lose_extensions_and_trailers() {
        let body =
            b"5;ext=\"x\"\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
        for split in 1..body.len() {
            let (out, used, done) = run(body, split).expect("valid");
            assert!(done);
            assert_eq!(used, body.len() - 4, "split {split}");
            assert_eq!(payload(&out), b"hello 0123456789");
            let text = String::from_utf8_lossy(&out);
            assert!(!text.contains("ext") && !text.contains("Trailer"), "{text}");
        }
    }

    #[test]
    fn an_unfinished_body_is_not_done() {
        let (_, _, done) = run(b"5\r\nhel", 64).expect("so far valid");
        assert!(!done);
    }

    #[test]
    fn malformed_framing_is_refused() {
        for bad in [
            &b"zz\r\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhelloXX0\r\n\r\n",
            b"ffffffffffffffffff\r\n",
            b"-1\r\n",
            b"0\r\nbad trailer\n\r\n",
        ] {
            assert_eq!(run(bad, 64).map(|r| r.2), Err(Malformed), "{bad:?}");
        }
        let long = [b'1'; MAX_LINE + 1];
        assert_eq!(run(&long, 64).map(|r| r.2), Err(Malformed));
        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..400 {
            trailers.extend_from_slice(b"X-T: 123456789\r\n");
        }
        assert_eq!(run(&trailers, 100).map(|r| r.2), Err(Malformed));
    }
}
