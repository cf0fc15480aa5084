//! Where each value of a recipe sits in its YAML text. serde gives us the typed model but
//! forgets positions; this map, built from yaml-rust2's marked events, lets every semantic
//! error point at `file:line:col` of the offending value.
//!
//! Paths use the same spelling serde_yaml uses in its own messages:
//! `layers[0].steps[1].copy.src`. The document root is the empty path.

use std::collections::HashMap;

use yaml_rust2::parser::{MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;
use yaml_rust2::Event;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, col: 1 };

    fn from_marker(m: Marker) -> Pos {
        // yaml-rust2 lines are 1-based, columns 0-based.
        Pos {
            line: m.line().max(1),
            col: m.col() + 1,
        }
    }
}

/// Value path → position of the value (and of its key, for map entries), plus the raw text
/// of scalars, so checks can see what was written rather than what YAML made of it.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
    scalars: HashMap<String, String>,
}

impl SourceMap {
    /// Builds the map, or returns the scanner's position and message on malformed YAML.
    pub fn build(text: &str) -> Result<SourceMap, (Pos, String)> {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        parser
            .load(&mut builder, false)
            .map_err(|e| (Pos::from_marker(*e.marker()), e.info().to_string()))?;
        Ok(builder.map)
    }

    /// Position of the value at `path`, if it was written in the recipe.
    pub fn value(&self, path: &str) -> Option<Pos> {
        self.values.get(path).copied()
    }

    /// Position of the key of the map entry at `path`, if it was written.
    pub fn key(&self, path: &str) -> Option<Pos> {
        self.keys.get(path).copied()
    }

    /// Raw text of the scalar at `path` (quotes removed, no type resolution).
    pub fn scalar(&self, path: &str) -> Option<&str> {
        self.scalars.get(path).map(String::as_str)
    }

    /// Position of `path`, or of its nearest written ancestor (a defaulted field points at
    /// the map it would have been in), or the start of the file.
    pub fn locate(&self, path: &str) -> Pos {
        let mut p = path;
        loop {
            if let Some(pos) = self.value(p) {
                return pos;
            }
            match parent_path(p) {
                Some(parent) => p = parent,
                None => return Pos::START,
            }
        }
    }
}

/// `a.b[2]` → `a.b`, `a.b` → `a`, `a` → ``, `` → None.
pub fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    if path.ends_with(']') {
        if let Some(i) = path.rfind('[') {
            return Some(&path[..i]);
        }
    }
    Some(path.rfind('.').map_or("", |i| &path[..i]))
}

pub fn child_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

pub fn child_index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

enum Frame {
    Map {
        path: String,
        /// `Some(key)` once a key was read and its value is expected next.
        key: Option<String>,
    },
    Seq {
        path: String,
        next: usize,
    },
    /// A complex (non-scalar) map key: tracked only to keep the nesting right.
    Ignored,
}

#[derive(Default)]
struct Builder {
    map: SourceMap,
    stack: Vec<Frame>,
}

impl Builder {
    /// Works out the path of the node starting now, or `None` if it is a map key (handled
    /// here) or lives inside an ignored complex key.
    fn node_path(&mut self, ev: &Event, pos: Pos) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Ignored) => None,
            Some(Frame::Seq { path, next }) => {
                let p = child_index(path, *next);
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { path, key }) => match key.take() {
                Some(k) => Some(child_key(path, &k)),
                None => {
                    let k = match ev {
                        Event::Scalar(s, ..) => s.clone(),
                        _ => "?".to_string(),
                    };
                    self.map.keys.insert(child_key(path, &k), pos);
                    // A block map's start event comes after its first key; the map
                    // itself is best shown at that key.
                    if let Some(start) = self.map.values.get_mut(path.as_str()) {
                        if (pos.line, pos.col) < (start.line, start.col) {
                            *start = pos;
                        }
                    }
                    *key = Some(k);
                    if matches!(ev, Event::MappingStart(..) | Event::SequenceStart(..)) {
                        self.stack.push(Frame::Ignored);
                    }
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos::from_marker(mark);
        match &ev {
            Event::Scalar(..)
            | Event::Alias(_)
            | Event::MappingStart(..)
            | Event::SequenceStart(..) => {
                let inside_ignored = matches!(self.stack.last(), Some(Frame::Ignored));
                let Some(path) = self.node_path(&ev, pos) else {
                    if inside_ignored
                        && matches!(ev, Event::MappingStart(..) | Event::SequenceStart(..))
                    {
                        self.stack.push(Frame::Ignored);
                    }
                    return;
                };
                self.map.values.entry(path.clone()).or_insert(pos);
                match ev {
                    Event::Scalar(text, ..) => {
                        self.map.scalars.insert(path, text);
                    }
                    Event::MappingStart(..) => self.stack.push(Frame::Map { path, key: None }),
                    Event::SequenceStart(..) => self.stack.push(Frame::Seq { path, next: 0 }),
                    _ => {}
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_values_and_keys() {
        let text = "\
name: demo
layers:
  - steps:
      - copy: {src: bin, dest: /usr/bin/}
      - file:
          path: /etc/motd
          content: \"hi\"
config:
  ? [complex, key]
  : ignored
  env:
    A: b
";
        let map = SourceMap::build(text).expect("valid yaml");
        let cases = [
            ("name", 1, 7),
            ("layers[0].steps[0].copy.src", 4, 21),
            ("layers[0].steps[0].copy.dest", 4, 32),
            ("layers[0].steps[1].file.path", 6, 17),
            ("layers[0].steps[1].file.content", 7, 20),
            ("config.env.A", 12, 8),
            // Block maps are shown at their first key, flow maps at `{`.
            ("", 1, 1),
            ("layers[0]", 3, 5),
            ("layers[0].steps[0]", 4, 9),
            ("layers[0].steps[0].copy", 4, 15),
            ("layers[0].steps[1].file", 6, 11),
        ];
        for (path, line, col) in cases {
            assert_eq!(map.value(path), Some(Pos { line, col }), "{path}");
        }
        assert_eq!(
            map.key("layers[0].steps[1].file.path"),
            Some(Pos { line: 6, col: 11 })
        );
        assert_eq!(map.scalar("layers[0].steps[1].file.content"), Some("hi"));
        // Defaulted fields point at the nearest written ancestor.
        assert_eq!(
            map.locate("layers[0].steps[1].file.mode"),
            map.value("layers[0].steps[1].file").unwrap_or(Pos::START)
        );
    }

    #[test]
    fn parent_paths() {
        assert_eq!(parent_path("a.b[2]"), Some("a.b"));
        assert_eq!(parent_path("a.b"), Some("a"));
        assert_eq!(parent_path("a"), Some(""));
        assert_eq!(parent_path(""), None);
    }

    #[test]
    fn malformed_yaml_has_a_position() {
        let err = SourceMap::build("a: [1, 2\nb: 3\n").err();
        assert!(err.is_some());
    }
}
