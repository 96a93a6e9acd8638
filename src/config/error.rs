//! Load errors: every problem found in a file, each with where it is and what to do.
//!
//! Messages are written by credproxy, never by a parser or deserializer, and never contain
//! a value from the file: not a secret, not an unknown key (which may be the tail of a
//! secret that a stray comma split off), not a `{ file: }` path's contents.

use std::fmt;
use std::path::{Path, PathBuf};

use super::yaml::Mark;

/// At most this many problems are printed; the rest are counted.
pub const MAX_PRINTED: usize = 100;

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where YAML could tell.
    pub location: Option<Mark>,
    /// The section the problem is in, e.g. `sources.github` or `callers.ci`.
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
        if let Some(Mark { line, column }) = self.location {
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
/// with the file name like a compiler diagnostic (`sources.yaml:7:5: sources.github.upstream:
/// …`), the first [`MAX_PRINTED`] of them.
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

    pub fn one(path: &Path, problem: Problem) -> Self {
        Self::new(path, vec![problem])
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.path.display();
        let count = self.problems.len();
        write!(
            f,
            "{file}: {} problem{}",
            thousands(count),
            if count == 1 { "" } else { "s" }
        )?;
        for problem in self.problems.iter().take(MAX_PRINTED) {
            write!(f, "\n  {file}:{problem}")?;
        }
        if count > MAX_PRINTED {
            write!(f, "\n  … and {} more", thousands(count - MAX_PRINTED))?;
        }
        Ok(())
    }
}

/// `3900` → `3,900`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_a_bounded_number_of_problems() {
        let problems = (0..4000)
            .map(|i| Problem {
                location: Some(Mark {
                    line: i + 2,
                    column: 3,
                }),
                section: Some(format!("sources.s{i}")),
                field: Some("auth_type".into()),
                message: "missing".into(),
            })
            .collect();
        let text = ConfigError::new(Path::new("s.yaml"), problems).to_string();
        assert!(
            text.starts_with("s.yaml: 4,000 problems\n  s.yaml:2:3: sources.s0.auth_type: missing"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 1 + MAX_PRINTED + 1);
        assert!(text.ends_with("… and 3,900 more"), "{text}");
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
