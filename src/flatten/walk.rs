//! The serde walk of a page: the page object, its records array, each record's keys along
//! the trie, and each value into its column (or `_extra`).

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::RecordContext;
use super::row::{RowState, minified};
use super::trie::{Node, Trie, join_path};

/// A map key, borrowed from the input when it has no escapes.
pub(super) struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The page object: the records array goes to rows, every other key into a map.
/// Yields `None` when the records key is absent.
pub(super) struct PageSeed<'a, 'c> {
    pub(super) trie: &'a Trie,
    pub(super) state: &'a mut RowState,
    pub(super) ctx: &'a RecordContext<'c>,
    pub(super) records_key: &'a str,
}

impl<'de> DeserializeSeed<'de> for PageSeed<'_, '_> {
    type Value = Option<Map<String, Value>>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PageSeed<'_, '_> {
    type Value = Option<Map<String, Value>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a page object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut meta = Map::new();
        let mut found = false;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if key.0 == self.records_key && !found {
                found = true;
                map.next_value_seed(RecordsSeed {
                    trie: self.trie,
                    state: &mut *self.state,
                    ctx: self.ctx,
                })?;
            } else {
                let value: Value = map.next_value()?;
                meta.insert(key.0.into_owned(), value);
            }
        }
        Ok(found.then_some(meta))
    }
}

/// The records array (null counts as empty).
pub(super) struct RecordsSeed<'a, 'c> {
    pub(super) trie: &'a Trie,
    pub(super) state: &'a mut RowState,
    pub(super) ctx: &'a RecordContext<'c>,
}

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(RecordSeed {
                node: self.trie,
                state: &mut *self.state,
                ctx: self.ctx,
            })?
            .is_some()
        {}
        Ok(())
    }
}

/// One record: an object walked along the trie, then the row is completed.
pub(super) struct RecordSeed<'a, 'c> {
    pub(super) node: &'a Trie,
    pub(super) state: &'a mut RowState,
    pub(super) ctx: &'a RecordContext<'c>,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        let RecordSeed { node, state, ctx } = self;
        state.begin_row();
        deserializer.deserialize_map(ObjectVisitor {
            node,
            state: &mut *state,
        })?;
        state.end_row(ctx);
        Ok(())
    }
}

/// The keys of an object at a known path.
pub(super) struct ObjectVisitor<'a> {
    pub(super) node: &'a Trie,
    pub(super) state: &'a mut RowState,
}

impl<'de> Visitor<'de> for ObjectVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // The slot of the key before this one (the node's own slot: none yet).
        let mut previous = self.node.order_base;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let found = self
                .node
                .lookup(&key.0, &mut previous, &mut self.state.next_key);
            match found {
                Some(Node::Column(c)) => {
                    if self.state.columns[*c].json {
                        let raw: &'de RawValue = map.next_value()?;
                        self.state.put_json_text(*c, raw.get());
                    } else {
                        map.next_value_seed(ValueSeed {
                            column: *c,
                            state: &mut *self.state,
                        })?;
                    }
                }
                Some(Node::Object(child)) => map.next_value_seed(NestedSeed {
                    node: child,
                    state: &mut *self.state,
                })?,
                None => {
                    let raw: &'de RawValue = map.next_value()?;
                    let path = join_path(&self.node.path, &key.0);
                    self.state
                        .keep_extra(path, raw.get().to_string(), "not in the schema");
                }
            }
        }
        Ok(())
    }
}

/// Maps any JSON value that reaches a typed column into it (coercing) or into `_extra`.
pub(super) struct ValueSeed<'a> {
    pub(super) column: usize,
    pub(super) state: &'a mut RowState,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if !self.state.exact {
            return deserializer.deserialize_any(self);
        }
        let raw = <&'de RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        let (column, state) = (self.column, self.state);
        match text.as_bytes().first() {
            Some(b'"') => {
                let value: String = serde_json::from_str(text).map_err(de::Error::custom)?;
                state.put_str(column, &value);
            }
            Some(b't') => state.put_bool(column, true),
            Some(b'f') => state.put_bool(column, false),
            Some(b'n') | None => {}
            Some(b'{' | b'[') => state.mismatch_text(column, minified(text)),
            Some(_) => state.put_number_text(column, text),
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.state.put_bool(self.column, v);
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.state.put_i64(self.column, v);
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.state.put_u64(self.column, v);
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.state.put_f64(self.column, v);
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.state.put_str(self.column, v);
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    // An object or array where a value goes: the exact path keeps it as the API wrote it.
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        de::IgnoredAny::deserialize(de::value::MapAccessDeserializer::new(map))?;
        self.state.needs_exact = true;
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        de::IgnoredAny::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        self.state.needs_exact = true;
        Ok(())
    }
}

/// A value at a known object path: an object is descended into, null leaves its columns null,
/// anything else is kept in `_extra`.
pub(super) struct NestedSeed<'a> {
    pub(super) node: &'a Trie,
    pub(super) state: &'a mut RowState,
}

impl<'de> DeserializeSeed<'de> for NestedSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        let NestedSeed { node, state } = self;
        if state.exact {
            // Exact: the value's raw text first; an object is then walked from that text.
            let raw = <&'de RawValue>::deserialize(deserializer)?;
            let text = raw.get();
            match text.as_bytes().first() {
                Some(b'{') => {
                    let mut inner = serde_json::Deserializer::from_str(text);
                    inner
                        .deserialize_map(ObjectVisitor { node, state })
                        .map_err(de::Error::custom)?;
                }
                Some(b'n') | None => {}
                Some(_) => state.keep_extra(node.path.clone(), minified(text), "not an object"),
            }
            return Ok(());
        }
        let value = deserializer.deserialize_any(NestedVisitor {
            node,
            state: &mut *state,
        })?;
        if let Some(value) = value {
            state.keep_extra(node.path.clone(), value.to_string(), "not an object");
        }
        Ok(())
    }
}

/// Yields the value when it is not an object or null, so the caller keeps it in `_extra`.
pub(super) struct NestedVisitor<'a> {
    pub(super) node: &'a Trie,
    pub(super) state: &'a mut RowState,
}

impl<'de> Visitor<'de> for NestedVisitor<'_> {
    type Value = Option<Value>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object or null")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<Value>, A::Error> {
        ObjectVisitor {
            node: self.node,
            state: self.state,
        }
        .visit_map(map)?;
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<Value>, E> {
        Ok(None)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<Value>, E> {
        Ok(Some(Value::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<Value>, E> {
        Ok(Some(Value::from(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<Value>, E> {
        Ok(Some(Value::from(v)))
    }
    // A float's text, or an array's numbers, may not survive a float: read exactly.
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Option<Value>, E> {
        self.state.needs_exact = true;
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<Value>, E> {
        Ok(Some(Value::String(v.to_string())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<Value>, A::Error> {
        de::IgnoredAny::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        self.state.needs_exact = true;
        Ok(None)
    }
}
