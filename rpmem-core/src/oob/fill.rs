//! Accumulating a message that arrives in pieces.

/// A fixed buffer that collects bytes until a target length is reached.
#[derive(Debug)]
pub(crate) struct Accum<const N: usize> {
    buf: [u8; N],
    have: usize,
}

impl<const N: usize> Accum<N> {
    pub(crate) const fn new() -> Self {
        Accum {
            buf: [0; N],
            have: 0,
        }
    }

    /// Bytes collected so far.
    pub(crate) fn len(&self) -> usize {
        self.have
    }

    /// Forgets the collected bytes.
    pub(crate) fn clear(&mut self) {
        self.have = 0;
    }

    /// Copies from `input` until `target` bytes are collected (or `input`
    /// runs out); returns how many bytes of `input` were taken and whether
    /// the target is reached. A target above the capacity is capped.
    pub(crate) fn fill(&mut self, target: usize, input: &[u8]) -> (usize, bool) {
        let target = target.min(N);
        let want = target.saturating_sub(self.have);
        let take = want.min(input.len());
        let end = self.have.saturating_add(take);
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.have..end), input.get(..take)) {
            dst.copy_from_slice(src);
            self.have = end;
            (take, self.have >= target)
        } else {
            (0, self.have >= target)
        }
    }

    /// The collected bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.buf.get(..self.have).unwrap_or(&[])
    }
}

/// A fixed output buffer holding the last message built.
#[derive(Debug)]
pub(crate) struct Out<const N: usize> {
    buf: [u8; N],
}

impl<const N: usize> Out<N> {
    pub(crate) const fn new() -> Self {
        Out { buf: [0; N] }
    }

    /// The whole buffer, to emit into.
    pub(crate) fn space(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// The first `len` bytes (all of them if `len` is too large).
    pub(crate) fn get(&self, len: usize) -> &[u8] {
        self.buf.get(..len).unwrap_or(&self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_stops_at_target_and_caps_at_capacity() {
        let mut a = Accum::<8>::new();
        assert_eq!(a.fill(4, &[1, 2]), (2, false));
        assert_eq!(a.fill(4, &[3, 4, 5]), (2, true));
        assert_eq!(a.bytes(), &[1, 2, 3, 4]);
        assert_eq!(a.fill(100, &[9; 10]), (4, true));
        assert_eq!(a.len(), 8);
        a.clear();
        assert_eq!(a.fill(1, &[]), (0, false));
    }
}
