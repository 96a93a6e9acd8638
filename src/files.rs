//! Reading the files an operator points credproxy at: the config, `{ file: … }` secrets,
//! certificates and keys.
//!
//! Every such file must be a regular file once symlinks are followed, and is read up to a
//! size cap. A FIFO would block the reading thread forever (and with it every later reload
//! and the shutdown), `/dev/zero` would be read until memory runs out: both are refused.
//! The file is opened with `O_NONBLOCK`, so that opening a FIFO with no writer returns at
//! once and can be told apart by `fstat`, instead of waiting for a writer.

use std::fs::{File, OpenOptions};
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

/// Largest `sources.yaml` accepted (a 100,000-source file is about 12 MiB).
pub const MAX_CONFIG_BYTES: u64 = 32 * 1024 * 1024;
/// Largest secret, certificate, key or JWKS file accepted.
pub const MAX_SECRET_FILE_BYTES: u64 = 1024 * 1024;

/// Why a file was not read. Names the kind of problem, never the file's contents.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("is larger than {limit} bytes")]
    TooLarge { limit: u64 },
}

impl ReadError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Reads the regular file at `path` (symlinks followed), at most `limit` bytes.
pub fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.by_ref().take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { limit });
    }
    Ok(bytes)
}

/// Like [`read_capped`], for text.
pub fn read_text_capped(path: &Path, limit: u64) -> Result<String, ReadError> {
    let bytes = read_capped(path, limit)?;
    String::from_utf8(bytes).map_err(|_| {
        ReadError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "is not UTF-8",
        ))
    })
}

fn open_regular(path: &Path) -> Result<File, ReadError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        return Ok(file);
    }
    Err(ReadError::NotRegular(if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a special file"
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_up_to_the_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").expect("write");
        assert_eq!(read_capped(&path, 5).expect("read"), b"12345");
        assert!(matches!(
            read_capped(&path, 4),
            Err(ReadError::TooLarge { limit: 4 })
        ));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).expect("symlink");
        assert_eq!(read_capped(&link, 5).expect("through a symlink"), b"12345");
        assert!(read_capped(&dir.path().join("absent"), 5)
            .expect_err("absent")
            .is_not_found());
    }

    #[test]
    fn special_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        )
        .expect("mkfifo");
        // No writer: a blocking open would hang this test.
        assert!(matches!(
            read_capped(&fifo, 10),
            Err(ReadError::NotRegular("a FIFO"))
        ));
        assert!(matches!(
            read_capped(Path::new("/dev/zero"), 10),
            Err(ReadError::NotRegular("a device"))
        ));
        assert!(matches!(
            read_capped(dir.path(), 10),
            Err(ReadError::NotRegular("a directory"))
        ));
    }
}
