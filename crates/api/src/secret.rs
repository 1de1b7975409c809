//! The generated signing secret of the embedded defaults: `{DATA_DIR}/secret.key`, mode 0600.

use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use secrecy::SecretString;

/// The secret kept at `path`, or a new random one written there (readable by the owner only).
///
/// # Errors
/// The I/O error when the file can be neither read nor created.
pub fn load_or_generate(path: &Path) -> std::io::Result<SecretString> {
    match std::fs::read_to_string(path) {
        Ok(existing) if !existing.trim().is_empty() => {
            return Ok(SecretString::from(existing.trim().to_owned()));
        }
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    let secret = hex::encode(bytes);
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(file) => file,
        // Another process created it first: use theirs.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            return Ok(SecretString::from(
                std::fs::read_to_string(path)?.trim().to_owned(),
            ));
        }
        Err(e) => return Err(e),
    };
    file.write_all(secret.as_bytes())?;
    file.sync_all()?;
    Ok(SecretString::from(secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_secret_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let first = load_or_generate(&path).unwrap();
        assert_eq!(first.expose_secret().len(), 64);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let second = load_or_generate(&path).unwrap();
        assert_eq!(first.expose_secret(), second.expose_secret());
    }
}
