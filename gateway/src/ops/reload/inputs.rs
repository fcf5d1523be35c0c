//! The version stamps of the files a configuration is read from, to tell whether any changed.

use std::path::{Path, PathBuf};

/// Each input file with its version stamp (absent: cannot be read).
pub(crate) type Inputs = Vec<(PathBuf, Option<(u64, u64, u64, i64, i64)>)>;

/// What identifies the inputs' versions without reading them: device, inode, length and
/// modification time of the main file and of every policy file (a rename over a file changes
/// its inode; an edit in place, its time and usually its length).
pub(crate) fn inputs(config_path: &Path, policies_dir: &Path) -> Inputs {
    use std::os::unix::fs::MetadataExt;
    let mut paths = vec![config_path.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(policies_dir) {
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        paths.extend(files);
    }
    paths
        .into_iter()
        .map(|p| {
            let stamp = std::fs::metadata(&p)
                .ok()
                .map(|m| (m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec()));
            (p, stamp)
        })
        .collect()
}
