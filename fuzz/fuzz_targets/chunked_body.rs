//! Any bytes as a back-end's chunked body, split anywhere: refused, unfinished, or decoded into
//! chunks that decode again to themselves, never a panic. The first byte picks the split size.
#![no_main]

use gateway::fast::chunked::Dechunk;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let mut d = Dechunk::default();
    let mut out = Vec::new();
    let mut used = 0;
    for part in body.chunks(usize::from(split).max(1)) {
        match d.feed(part, &mut out) {
            Ok(n) => {
                assert!(n <= part.len());
                used += n;
            }
            Err(_) => return,
        }
        if d.done() {
            break;
        }
    }
    assert!(used <= body.len());
    if d.done() {
        // What goes to the client is itself valid chunked framing, and it reads back unchanged.
        let mut again = Dechunk::default();
        let mut out2 = Vec::new();
        assert_eq!(again.feed(&out, &mut out2), Ok(out.len()));
        assert!(again.done());
        assert_eq!(out2, out);
    }
});
