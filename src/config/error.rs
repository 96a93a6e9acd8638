//! Load errors: every problem found in a file, each with where it is and what to do.
//!
//! A message never contains a secret value: serde's messages are passed through
//! [`redact_serde_message`], and validation writes its own messages without values.

use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line and column, where YAML could tell.
    pub location: Option<(usize, usize)>,
    /// The source (or caller) the problem is in, e.g. `sources.github`.
    pub section: Option<String>,
    pub field: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            location: None,
            section: None,
            field: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((line, column)) = self.location {
            write!(f, "{line}:{column}: ")?;
        }
        match (&self.section, &self.field) {
            (Some(section), Some(field)) => write!(f, "{section}.{field}: ")?,
            (Some(section), None) => write!(f, "{section}: ")?,
            (None, Some(field)) => write!(f, "{field}: ")?,
            (None, None) => {}
        }
        f.write_str(&self.message)
    }
}

/// Why a config file was not loaded. `Display` prints one problem per line, each prefixed
/// with the file name like a compiler diagnostic: `sources.yaml:7:5: sources.github.upstream: …`.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub path: PathBuf,
    pub problems: Vec<Problem>,
}

impl ConfigError {
    pub fn new(path: &Path, problems: Vec<Problem>) -> Self {
        Self {
            path: path.to_path_buf(),
            problems,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.path.display();
        let count = self.problems.len();
        write!(
            f,
            "{file}: {count} problem{}",
            if count == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            write!(f, "\n  {file}:{problem}")?;
        }
        Ok(())
    }
}

/// serde's messages quote the scalar they choked on (`invalid type: string "hunter2",
/// expected a map`). Everything from the first `"` to the last is replaced by
/// `"[redacted]"`: pairing quotes one by one would desync when a quoted key or id itself
/// holds a `"` (found by fuzzing). Key names, which serde quotes with backticks, stay.
pub fn redact_serde_message(message: &str) -> String {
    match (message.find('"'), message.rfind('"')) {
        (Some(first), Some(last)) if first < last => {
            format!(
                "{}\"[redacted]\"{}",
                &message[..first],
                &message[last + 1..]
            )
        }
        (Some(first), _) => format!("{}\"[redacted]", &message[..first]),
        _ => message.to_owned(),
    }
}

/// Turns a serde_yaml error into a problem: its path (`sources.github.upstream`) becomes
/// section and field, its location the line and column, and its message is redacted.
pub fn problem_from_yaml(error: &serde_yaml::Error) -> Problem {
    let location = error
        .location()
        .map(|l| (l.line(), l.column()))
        .filter(|&(line, _)| line > 0);
    let mut text = error.to_string();
    // serde_yaml appends " at line L column C"; the location is printed up front instead.
    if let Some(at) = text.rfind(" at line ") {
        text.truncate(at);
    }
    let (section, message) = split_path(&text);
    Problem {
        location,
        section,
        field: None,
        message: redact_serde_message(message),
    }
}

/// `sources.github.upstream: message` → (`sources.github.upstream`, `message`). The path
/// is everything before the first `": "` when it has no spaces. It is kept whole, not split
/// into id and field, because a source id may itself contain dots.
fn split_path(text: &str) -> (Option<String>, &str) {
    match text.split_once(": ") {
        Some((path, message)) if !path.contains(' ') => (Some(path.to_owned()), message),
        _ => (None, text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_quoted_values_and_keeps_key_names() {
        assert_eq!(
            redact_serde_message(r#"invalid type: string "hunter2", expected a map"#),
            r#"invalid type: string "[redacted]", expected a map"#
        );
        assert_eq!(
            redact_serde_message("unknown field `bogus`, expected `upstream`"),
            "unknown field `bogus`, expected `upstream`"
        );
        assert_eq!(redact_serde_message(r#"odd "open"#), r#"odd "[redacted]"#);
        assert_eq!(
            redact_serde_message(r#"a "x"hunter2"y" b"#),
            r#"a "[redacted]" b"#
        );
    }

    #[test]
    fn splits_serde_paths() {
        assert_eq!(
            split_path("sources.gh.headers: invalid type: map"),
            (Some("sources.gh.headers".into()), "invalid type: map")
        );
        assert_eq!(
            split_path("did not find expected key"),
            (None, "did not find expected key")
        );
    }
}
