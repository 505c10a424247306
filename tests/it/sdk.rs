//! The official Tencent Cloud Python SDK and tccli drive the real binary (tests/sdk). They need
//! a virtualenv with the SDK: `python3 -m venv .venv && .venv/bin/pip install
//! tencentcloud-sdk-python-scf tccli pytest`. Without it the test says so and skips, except
//! under CI, where a missing SDK is a failure.

use std::path::Path;
use std::process::Command;

#[test]
fn the_official_sdk_and_tccli_work_unchanged() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var("SCF_SDK_PYTHON")
        .map(Into::into)
        .unwrap_or_else(|_| root.join(".venv/bin/python"));
    let ready = Command::new(&python)
        .args(["-c", "import tencentcloud.scf.v20180416, pytest"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        let why = format!(
            "SKIPPED: the SDK tests need {} with tencentcloud-sdk-python-scf, tccli and pytest \
             (python3 -m venv .venv && .venv/bin/pip install tencentcloud-sdk-python-scf tccli pytest)",
            python.display()
        );
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("\n*** {why} ***\n");
        return;
    }
    let out = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/sdk"])
        .current_dir(root)
        .env("SCF_CONSOLE_BIN", env!("CARGO_BIN_EXE_scf-console"))
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the SDK tests failed:\n{report}");
    assert!(report.contains(" passed"), "{report}");
}
