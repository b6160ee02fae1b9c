//! Whether two paths name one file, so that a file cfscrub writes is never
//! one that it reads.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Returns whether `a` and `b` name the same file: the same device and
/// inode when both exist, otherwise the same absolute path, compared
/// without resolving `..` or symbolic links.
pub fn same_file(a: &Path, b: &Path) -> bool {
    if let (Ok(first), Ok(second)) = (fs::metadata(a), fs::metadata(b)) {
        return first.dev() == second.dev() && first.ino() == second.ino();
    }
    match (std::path::absolute(a), std::path::absolute(b)) {
        (Ok(first), Ok(second)) => first == second,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_link_is_same_file() {
        let dir = std::env::temp_dir()
            .join(format!("cfscrub-same-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("app.log");
        let link = dir.join("link.log");
        let other = dir.join("other.log");
        std::fs::write(&file, b"x").unwrap();
        std::fs::write(&other, b"x").unwrap();
        let _ = std::fs::remove_file(&link);
        std::fs::hard_link(&file, &link).unwrap();
        let same = same_file(&file, &link);
        let different = same_file(&file, &other);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(same, "a hard link is the same file");
        assert!(!different, "two files with the same bytes are not");
    }

    #[test]
    fn missing_paths_compare_absolute() {
        let missing = Path::new("cfscrub-missing-dir/app.log");
        let absolute = std::env::current_dir().unwrap().join(missing);
        assert!(same_file(missing, &absolute));
        assert!(!same_file(missing, Path::new("cfscrub-missing-dir/b.log")));
    }
}
