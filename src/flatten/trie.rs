//! The trie of a table's JSON paths: which key leads to a column, which to an object.

pub(super) enum Node {
    Column(usize),
    Object(Trie),
}

/// Children of an object path. Fan-out is small, so a vector beats hashing.
pub(super) struct Trie {
    pub(super) path: String,
    pub(super) children: Vec<(Box<str>, Node)>,
    /// Where this node's key-order memory starts in `RowState::next_key` (one slot for the
    /// first key, then one per child: the child that came after it last time).
    pub(super) order_base: usize,
}

impl Trie {
    /// The child at `key`, trying `hint` first (the child that followed the previous key
    /// last time: the records of a page share their key order).
    pub(super) fn child(&self, key: &str, hint: usize) -> Option<(usize, &Node)> {
        if let Some((expected, node)) = self.children.get(hint)
            && same_key(expected.as_bytes(), key.as_bytes())
        {
            return Some((hint, node));
        }
        self.children
            .iter()
            .enumerate()
            .find(|(_, (k, _))| same_key(k.as_bytes(), key.as_bytes()))
            .map(|(i, (_, node))| (i, node))
    }

    /// The child at `key`, the one that followed the key in slot `previous` last time tried
    /// first; learns the order, and moves `previous` to this key's slot.
    #[inline]
    pub(super) fn lookup(
        &self,
        key: &str,
        previous: &mut usize,
        next_key: &mut [u32],
    ) -> Option<&Node> {
        let hint = next_key[*previous] as usize;
        let (index, node) = self.child(key, hint)?;
        next_key[*previous] = index as u32;
        *previous = self.order_base + 1 + index;
        Some(node)
    }

    pub(super) fn insert(&mut self, segments: &[String], column: usize) {
        let Some((first, rest)) = segments.split_first() else {
            return;
        };
        if rest.is_empty() {
            self.children
                .push((first.as_str().into(), Node::Column(column)));
            return;
        }
        let position = self.children.iter().position(|(k, _)| k.as_ref() == first);
        let index = position.unwrap_or_else(|| {
            let path = join_path(&self.path, first);
            let node = Node::Object(Trie {
                path,
                children: Vec::new(),
                order_base: 0,
            });
            self.children.push((first.as_str().into(), node));
            self.children.len() - 1
        });
        if let Node::Object(child) = &mut self.children[index].1 {
            child.insert(rest, column);
        }
    }

    /// Gives every node its slots of key-order memory from `next`; returns the slots used.
    pub(super) fn number(&mut self, next: usize) -> usize {
        self.order_base = next;
        let mut next = next + 1 + self.children.len();
        for (_, node) in &mut self.children {
            if let Node::Object(child) = node {
                next = child.number(next);
            }
        }
        next
    }
}

/// Whether two keys are equal, compared inline: keys are short (`mos`, `packets_received`),
/// and a call to `memcmp` per key cost more than the comparison itself (a tenth of a page's
/// flatten time in the profile).
#[inline(always)]
pub(super) fn same_key(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 {
        // 8-byte words, the last one overlapping the one before it.
        let word = |s: &[u8], at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&s[at..at + 8]);
            u64::from_ne_bytes(w)
        };
        let mut at = 0;
        while at + 8 < n {
            if word(a, at) != word(b, at) {
                return false;
            }
            at += 8;
        }
        return word(a, n - 8) == word(b, n - 8);
    }
    if n >= 4 {
        let word = |s: &[u8], at: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&s[at..at + 4]);
            u32::from_ne_bytes(w)
        };
        return word(a, 0) == word(b, 0) && word(a, n - 4) == word(b, n - 4);
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

pub(super) fn join_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::same_key;

    #[test]
    fn same_key_agrees_with_byte_equality_at_every_length() {
        let text = b"packets_received_cumulative_bytes";
        for n in 0..text.len() {
            let a = &text[..n];
            let copy = a.to_vec();
            assert!(same_key(a, &copy), "length {n}");
            for at in 0..n {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!same_key(a, &b), "length {n}, byte {at} differs");
            }
            assert!(!same_key(a, &text[..n + 1]), "lengths {n} and {}", n + 1);
        }
    }
}
