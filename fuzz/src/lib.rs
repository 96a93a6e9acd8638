//! Helpers shared by the fuzz targets: an independent walk over a YAML document, used by
//! the config targets to skip inputs that would make `load_bytes` read a device file, and
//! to tell where a marker secret sits.

use std::path::{Component, Path};

use saphyr_parser::{Event, Parser};

/// The marker secret: the config targets check that no load error ever quotes it.
pub const MARKER: &str = "hunter2-fuzz";

/// Keys whose values an error message may quote by design: the reference inside
/// `{ env: … }`, `{ file: … }` and `{ encrypted: … }` and the `tls_*` paths, which name
/// where a secret is, not the secret, and a caller's source list (`names unknown source
/// `x``).
const ECHOED: [&str; 7] = [
    "env",
    "file",
    "encrypted",
    "tls_ca_file",
    "tls_client_cert_file",
    "tls_client_key_file",
    "sources",
];

/// What a walk over a YAML document found.
#[derive(Debug, Default)]
pub struct Scan {
    /// The marker occurs in a key (a source id, a header name: names messages do print),
    /// a tag, the value of an [`ECHOED`] key, or anywhere in a document with aliases
    /// (which can repeat a value in a key's place): the leak check does not apply.
    pub marker_outside_secrets: bool,
    /// A `file:` value that is absolute, climbs with `..`, or names a device directory:
    /// a load would read outside the fuzz directory, so skip.
    pub unsafe_file_ref: bool,
}

/// Where the walk is: in a map (and whether the next scalar is a key), or in a list.
enum Frame {
    Map { expect_key: bool, key: Option<String> },
    Seq { parent: Option<String> },
}

impl Scan {
    /// Walks the events of `text` with saphyr-parser, the parser credproxy uses, so both
    /// read the same keys; the walk itself is independent of credproxy's code.
    pub fn of(text: &str) -> Self {
        let mut scan = Scan::default();
        let mut stack: Vec<Frame> = Vec::new();
        for event in Parser::new_from_str(text) {
            let Ok((event, _)) = event else { break };
            match event {
                Event::Scalar(value, _, _, tag) => {
                    if tag.is_some_and(|t| t.suffix.contains(MARKER) || t.handle.contains(MARKER)) {
                        scan.marker_outside_secrets = true;
                    }
                    scan.scalar(&value, &mut stack);
                }
                Event::SequenceStart(..) => {
                    let parent = Scan::parent(&mut stack);
                    stack.push(Frame::Seq { parent });
                }
                Event::MappingStart(..) => {
                    Scan::parent(&mut stack);
                    stack.push(Frame::Map { expect_key: true, key: None });
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    stack.pop();
                }
                Event::Alias(_) => {
                    if text.contains(MARKER) {
                        scan.marker_outside_secrets = true;
                    }
                    Scan::parent(&mut stack);
                }
                _ => {}
            }
        }
        scan
    }

    fn scalar(&mut self, value: &str, stack: &mut [Frame]) {
        let (in_key, parent) = match stack.last_mut() {
            Some(Frame::Map { expect_key, key }) if *expect_key => {
                *expect_key = false;
                *key = Some(value.to_owned());
                (true, None)
            }
            Some(Frame::Map { expect_key, key }) => {
                *expect_key = true;
                (false, key.take())
            }
            Some(Frame::Seq { parent }) => (false, parent.clone()),
            None => (false, None),
        };
        if value.contains(MARKER) {
            let echoed = parent.as_deref().is_some_and(|p| ECHOED.contains(&p));
            if in_key || echoed {
                self.marker_outside_secrets = true;
            }
        }
        if !in_key && parent.as_deref() == Some("file") && !safe_file_ref(value) {
            self.unsafe_file_ref = true;
        }
    }

    /// A collection (or alias) takes the place of a value: the key it belongs to, if any.
    fn parent(stack: &mut [Frame]) -> Option<String> {
        match stack.last_mut() {
            Some(Frame::Map { expect_key, key }) => {
                // A collection as a key is an error for credproxy; either way the next
                // scalar is a key again.
                *expect_key = true;
                key.take()
            }
            Some(Frame::Seq { parent }) => parent.clone(),
            None => None,
        }
    }
}

/// Whether `load_bytes` may read this `file:` reference while fuzzing.
fn safe_file_ref(value: &str) -> bool {
    let path = Path::new(value);
    let mut components = path.components();
    let first_ok = match components.next() {
        Some(Component::Normal(first)) => !matches!(first.to_str(), Some("dev" | "proc" | "sys")),
        _ => false,
    };
    first_ok && components.all(|c| matches!(c, Component::Normal(_))) && !value.contains('\0')
}

/// Loads `bytes` as `fuzz.yaml`, the way `credproxy check` would, and checks the result:
/// a loaded snapshot is consistent, and an error never quotes [`MARKER`] when the marker
/// sits only in secret values. Inputs whose `file:` references could reach a device
/// file are skipped. Returns whether the input was loaded at all.
pub fn load_and_check(bytes: &[u8]) -> bool {
    use credproxy::config::{load_bytes, LoadOptions};

    let scan = std::str::from_utf8(bytes).ok().map(Scan::of);
    if scan.as_ref().is_some_and(|s| s.unsafe_file_ref) {
        return false;
    }
    match load_bytes(Path::new("fuzz.yaml"), bytes, LoadOptions::default()) {
        Ok(spec) => {
            let snapshot = credproxy::live::build(spec, None);
            for source in snapshot.sources() {
                let found = snapshot.source(&source.id).expect("every source by its id");
                assert!(std::sync::Arc::ptr_eq(found, source));
                assert!(!source.id.is_empty() && !source.id.contains('/'));
                assert!(!source
                    .id
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control()));
                let upstream = &source.upstream;
                assert!(!upstream.base_path.ends_with('/'), "{upstream}");
                assert!(source.proxy_prefix.starts_with('/'));
            }
        }
        Err(error) => {
            let text = error.to_string();
            assert!(
                !error.problems.is_empty(),
                "an error with no problem: {text}"
            );
            let marker_in_secret_only = scan.is_some_and(|s| !s.marker_outside_secrets);
            let input = String::from_utf8_lossy(bytes);
            if marker_in_secret_only && input.contains(MARKER) {
                assert!(
                    !text.contains(MARKER),
                    "the error quotes the secret marker:\n{text}\n--- input:\n{input}"
                );
            }
        }
    }
    true
}
