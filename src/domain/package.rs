//! Code packages as zip files: what the API's `Code.ZipFile` carries, what the console uploads
//! and downloads. One set of rules for both doors: at most [`ZIP_MAX_BYTES`] of zip, at most
//! [`PACKAGE_MAX_BYTES`] unpacked (counted while unpacking, so a zip bomb stops at the limit),
//! no entry that would land outside the package, at least one file.

use super::function::{CodeFile, PACKAGE_MAX_BYTES};
use std::io::{Read, Write};

/// The largest zip package taken, by the API (base64, a third larger) or the console.
pub const ZIP_MAX_BYTES: usize = 50 * 1024 * 1024;

/// Unpacks a zip into files, or says in the user's words why it cannot.
pub fn unzip(bytes: &[u8]) -> Result<Vec<CodeFile>, String> {
    if bytes.len() > ZIP_MAX_BYTES {
        return Err("it is larger than 50 MB".into());
    }
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| e.to_string())?;
    let limit = PACKAGE_MAX_BYTES as u64;
    let mut total: u64 = 0;
    let mut files = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| e.to_string())?;
        if entry.is_dir() {
            continue;
        }
        let path = entry.enclosed_name().ok_or_else(|| {
            let name = entry.name().map(|n| n.into_owned()).unwrap_or_default();
            format!("the entry {name:?} has an unsafe path")
        })?;
        let path = path.to_string_lossy().replace('\\', "/");
        let mut content = Vec::new();
        (&mut entry)
            .take(limit - total + 1)
            .read_to_end(&mut content)
            .map_err(|e| e.to_string())?;
        total += content.len() as u64;
        if total > limit {
            return Err("it unpacks to more than 100 MB".into());
        }
        files.push(CodeFile { path, content });
    }
    if files.is_empty() {
        return Err("it holds no files".into());
    }
    Ok(files)
}

/// Packs files into a zip (deflated), as the console's download gives them.
pub fn zip(files: &[CodeFile]) -> std::io::Result<Vec<u8>> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(0o644);
        for f in files {
            w.start_file(f.path.as_str(), options)?;
            w.write_all(&f.content)?;
        }
        w.finish()?;
    }
    Ok(buf.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> CodeFile {
        CodeFile {
            path: path.into(),
            content: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_package_goes_round_trip() {
        let files = vec![file("index.py", "x = 1\n"), file("lib/util.py", "y = 2\n")];
        assert_eq!(unzip(&zip(&files).unwrap()).unwrap(), files);
    }

    #[test]
    fn bad_packages_say_why() {
        assert!(unzip(b"not a zip").is_err());
        assert_eq!(unzip(&zip(&[]).unwrap()).unwrap_err(), "it holds no files");
        let escape = zip(&[file("../etc/passwd", "x")]).unwrap();
        assert!(unzip(&escape).unwrap_err().contains("unsafe path"));
        let big = vec![0u8; ZIP_MAX_BYTES + 1];
        assert_eq!(unzip(&big).unwrap_err(), "it is larger than 50 MB");
    }
}
