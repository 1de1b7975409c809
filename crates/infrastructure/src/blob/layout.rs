//! Where image variants live beside their source, in the stores that name blobs by path.

use stowage_domain::FileId;

/// Appended to a file id to name the folder (or key prefix) of its variants. It is a segment of
/// its own rather than `{file_id}/`: stores kept on a file system (s3s-fs, MinIO) cannot hold an
/// object `a/b` beside an object `a/b/c`.
const VARIANTS_SUFFIX: &str = ".variants";

/// `{file_id}.variants`: the folder of the variants of `file_id`.
pub(crate) fn variants_dir(file_id: FileId) -> String {
    format!("{file_id}{VARIANTS_SUFFIX}")
}

/// The file whose variants folder `name` is, if it is one.
pub(crate) fn parse_variants_dir(name: &str) -> Option<FileId> {
    FileId::parse(name.strip_suffix(VARIANTS_SUFFIX)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variants_folder_names_its_file_and_nothing_else_does() {
        let id = FileId::new_random();

        assert_eq!(parse_variants_dir(&variants_dir(id)), Some(id));
        assert_eq!(parse_variants_dir(&id.to_string()), None);
        assert_eq!(parse_variants_dir(&format!("{id}.variant")), None);
        assert_eq!(parse_variants_dir(".variants"), None);
    }
}
