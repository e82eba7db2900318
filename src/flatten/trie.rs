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
            && expected.as_ref() == key
        {
            return Some((hint, node));
        }
        self.children
            .iter()
            .enumerate()
            .find(|(_, (k, _))| k.as_ref() == key)
            .map(|(i, (_, node))| (i, node))
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

pub(super) fn join_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}
