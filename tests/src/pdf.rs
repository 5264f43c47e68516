//! What a person sees in a PDF: each page rendered to an image by poppler (`pdftoppm`)
//! and read back by OCR (`tesseract`), so a test proves the text is drawn legibly with
//! the embedded font, not only present in the file. Like the browser, the tools are
//! required when `CMO_REQUIRE_BROWSER=1` (CI) and skipped with a line otherwise.

use std::process::Command;

const PDFTOPPM: &str = "/usr/bin/pdftoppm";
const TESSERACT: &str = "/usr/bin/tesseract";

/// The text read from each page of `pdf`, or `None` when the tools are not installed
/// and not required.
pub fn read_pages(pdf: &[u8]) -> Option<Vec<String>> {
    let installed =
        std::path::Path::new(PDFTOPPM).exists() && std::path::Path::new(TESSERACT).exists();
    if !installed {
        assert!(
            std::env::var_os("CMO_REQUIRE_BROWSER").is_none(),
            "CMO_REQUIRE_BROWSER is set but {PDFTOPPM} or {TESSERACT} is missing \
             (apt-get install poppler-utils tesseract-ocr)"
        );
        eprintln!("SKIPPED: PDF reading: install poppler-utils and tesseract-ocr to run it");
        return None;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("copy.pdf");
    std::fs::write(&file, pdf).expect("write the PDF");
    let rendered = Command::new(PDFTOPPM)
        .args(["-r", "200", "-gray", "-png"])
        .arg(&file)
        .arg(dir.path().join("page"))
        .output()
        .expect("run pdftoppm");
    assert!(
        rendered.status.success(),
        "pdftoppm could not render the PDF: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let mut images: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read the pages")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    images.sort();
    assert!(!images.is_empty(), "pdftoppm rendered no page");
    if let Some(keep) = std::env::var_os("CMO_SCREENSHOTS") {
        let _ = std::fs::create_dir_all(&keep);
        for (i, image) in images.iter().enumerate() {
            let _ = std::fs::copy(
                image,
                std::path::Path::new(&keep).join(format!("record-copy-{}.png", i + 1)),
            );
        }
    }
    Some(
        images
            .iter()
            .map(|image| {
                let out = Command::new(TESSERACT)
                    .arg(image)
                    .arg("-")
                    .args(["-l", "eng", "--psm", "4"])
                    .output()
                    .expect("run tesseract");
                assert!(
                    out.status.success(),
                    "tesseract failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8_lossy(&out.stdout).into_owned()
            })
            .collect(),
    )
}
