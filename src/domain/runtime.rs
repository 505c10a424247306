//! The SCF runtime catalogue (`Python3.10`, `Nodejs18.15`, …) and which of them this machine's
//! interpreters can serve.

use std::fmt;

/// The language family of a runtime: decides the interpreter, the bootstrap and the code file
/// extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    Python,
    Nodejs,
}

impl Language {
    pub fn label(self) -> &'static str {
        match self {
            Language::Python => "Python",
            Language::Nodejs => "Node.js",
        }
    }

    /// The file extension of handler source files: `index.main_handler` lives in `index.py`.
    pub fn extension(self) -> &'static str {
        match self {
            Language::Python => "py",
            Language::Nodejs => "js",
        }
    }

    /// The interpreter command a user would recognise in messages.
    pub fn interpreter(self) -> &'static str {
        match self {
            Language::Python => "python3",
            Language::Nodejs => "node",
        }
    }
}

/// One SCF runtime name and the interpreter version it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Runtime {
    pub name: &'static str,
    pub language: Language,
    pub version: (u32, u32),
}

/// Every runtime name scf-console knows, newest first within each language (the order the
/// console offers them in).
pub const CATALOGUE: &[Runtime] = &[
    rt("Python3.12", Language::Python, 3, 12),
    rt("Python3.11", Language::Python, 3, 11),
    rt("Python3.10", Language::Python, 3, 10),
    rt("Python3.9", Language::Python, 3, 9),
    rt("Python3.7", Language::Python, 3, 7),
    rt("Python3.6", Language::Python, 3, 6),
    rt("Nodejs20.15", Language::Nodejs, 20, 15),
    rt("Nodejs18.15", Language::Nodejs, 18, 15),
    rt("Nodejs16.13", Language::Nodejs, 16, 13),
    rt("Nodejs14.18", Language::Nodejs, 14, 18),
    rt("Nodejs12.16", Language::Nodejs, 12, 16),
];

const fn rt(name: &'static str, language: Language, major: u32, minor: u32) -> Runtime {
    Runtime {
        name,
        language,
        version: (major, minor),
    }
}

impl Runtime {
    /// Looks up an SCF runtime name exactly as SCF spells it.
    pub fn by_name(name: &str) -> Option<&'static Runtime> {
        CATALOGUE.iter().find(|r| r.name == name)
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// An interpreter found on this machine: its command and the version it reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    pub command: String,
    pub version: (u32, u32, u32),
}

/// The interpreters this machine offers, one per language (or none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interpreters {
    pub python: Option<Interpreter>,
    pub nodejs: Option<Interpreter>,
}

/// Whether a runtime can run here, and if not, why (in the user's terms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    Available { interpreter: String },
    Unavailable { reason: String },
}

impl Interpreters {
    pub fn for_language(&self, language: Language) -> Option<&Interpreter> {
        match language {
            Language::Python => self.python.as_ref(),
            Language::Nodejs => self.nodejs.as_ref(),
        }
    }

    /// A runtime is served by the machine's interpreter of its language when that interpreter is
    /// at least as new: code written for Python 3.9 runs on 3.11, not the other way round.
    pub fn availability(&self, runtime: &Runtime) -> Availability {
        let lang = runtime.language;
        match self.for_language(lang) {
            None => Availability::Unavailable {
                reason: format!(
                    "no {} interpreter was found on this server",
                    lang.interpreter()
                ),
            },
            Some(found) => {
                let (major, minor, patch) = found.version;
                if (major, minor) >= runtime.version {
                    Availability::Available {
                        interpreter: format!("{} {major}.{minor}.{patch}", lang.label()),
                    }
                } else {
                    Availability::Unavailable {
                        reason: format!(
                            "needs {} {}.{} or newer; this server has {major}.{minor}.{patch}",
                            lang.label(),
                            runtime.version.0,
                            runtime.version.1
                        ),
                    }
                }
            }
        }
    }

    pub fn is_available(&self, runtime: &Runtime) -> bool {
        matches!(self.availability(runtime), Availability::Available { .. })
    }

    /// The newest available runtime of a language: the wizard's default choice.
    pub fn newest(&self, language: Language) -> Option<&'static Runtime> {
        CATALOGUE
            .iter()
            .find(|r| r.language == language && self.is_available(r))
    }
}

/// Reads `Python 3.11.2` or `v20.20.2` as printed by `python3 --version` / `node --version`.
pub fn parse_version(output: &str) -> Option<(u32, u32, u32)> {
    let token = output.split_whitespace().find(|t| {
        t.trim_start_matches('v')
            .starts_with(|c: char| c.is_ascii_digit())
    })?;
    let mut parts = token.trim_start_matches('v').split('.').map(|p| {
        p.trim_end_matches(|c: char| !c.is_ascii_digit())
            .parse::<u32>()
    });
    let major = parts.next()?.ok()?;
    let minor = parts.next()?.ok()?;
    let patch = parts.next().and_then(Result::ok).unwrap_or(0);
    Some((major, minor, patch))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(python: Option<(u32, u32, u32)>, node: Option<(u32, u32, u32)>) -> Interpreters {
        Interpreters {
            python: python.map(|version| Interpreter {
                command: "python3".into(),
                version,
            }),
            nodejs: node.map(|version| Interpreter {
                command: "node".into(),
                version,
            }),
        }
    }

    #[test]
    fn parses_interpreter_version_output() {
        assert_eq!(parse_version("Python 3.11.2\n"), Some((3, 11, 2)));
        assert_eq!(parse_version("v20.20.2\n"), Some((20, 20, 2)));
        assert_eq!(parse_version("Python 3.13.0rc1"), Some((3, 13, 0)));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn newer_interpreters_serve_older_runtimes_only() {
        let m = machine(Some((3, 11, 2)), None);
        assert!(m.is_available(Runtime::by_name("Python3.9").unwrap()));
        assert!(m.is_available(Runtime::by_name("Python3.11").unwrap()));
        assert!(!m.is_available(Runtime::by_name("Python3.12").unwrap()));
        assert_eq!(m.newest(Language::Python).unwrap().name, "Python3.11");
        match m.availability(Runtime::by_name("Nodejs18.15").unwrap()) {
            Availability::Unavailable { reason } => assert!(reason.contains("node")),
            other => panic!("expected unavailable, got {other:?}"),
        }
    }
}
