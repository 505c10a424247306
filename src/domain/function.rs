//! Function rules: what a valid function is, checked once here for the console and the SCF API.
//!
//! Input arrives as a *draft* of strings (what the user typed, or what the API sent), so that a
//! form can show a bad value back next to its message. Validation turns a draft into typed
//! settings or into [`FieldErrors`] carrying SCF error codes.

use super::rules::{FieldError, FieldErrors, is_scf_identifier};
use super::runtime::{Interpreters, Runtime};
use crate::clock::Millis;
use serde::{Deserialize, Serialize};

pub const MEMORY_DEFAULT: u32 = 128;
pub const TIMEOUT_DEFAULT: u32 = 3;
pub const TIMEOUT_MAX: u32 = 900;
/// A function with async execution may run for up to 24 hours.
pub const TIMEOUT_MAX_ASYNC: u32 = 86_400;
pub const RETRY_NUM_MAX: u32 = 2;
/// SCF retries user errors twice by default, but not for async-execution functions.
pub const RETRY_NUM_DEFAULT: u32 = 2;
pub const RETRY_NUM_DEFAULT_ASYNC: u32 = 0;
pub const MSG_TTL_MIN: u32 = 60;
pub const MSG_TTL_MAX: u32 = 21_600;
pub const MSG_TTL_DEFAULT: u32 = 21_600;
pub const DESCRIPTION_MAX_CHARS: usize = 1000;
/// Invocations per second a function accepts before calls get `RequestLimitExceeded`.
pub const QPS_LIMIT_DEFAULT: u32 = 1000;
pub const QPS_LIMIT_MAX: u32 = 100_000;
/// Keys and values of all environment variables together stay under 4 KB.
pub const ENVIRONMENT_MAX_BYTES: usize = 4096;
/// Inline source edited in the console.
pub const CODE_MAX_BYTES: usize = 1024 * 1024;
/// A code package's files, unpacked, all together.
pub const PACKAGE_MAX_BYTES: usize = 100 * 1024 * 1024;

/// One file of a function's code package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeFile {
    pub path: String,
    pub content: Vec<u8>,
}

/// One environment variable, as SCF's `Environment.Variables[]` item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnvVar {
    pub key: String,
    pub value: String,
}

/// The settings that can change after creation, as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDraft {
    pub description: String,
    pub memory_size: String,
    pub timeout: String,
    pub environment: Vec<EnvVar>,
    pub trace_enable: String,
    pub retry_num: String,
    pub msg_ttl: String,
    pub qps_limit: String,
    /// Whether its instances may reach the network (SCF's PublicNetConfig), as a checkbox
    /// sends it: empty is off, so drafts start from [`FunctionDraft::with_defaults`] (on).
    pub public_net: String,
}

/// A whole new function, as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionDraft {
    pub function_name: String,
    pub runtime: String,
    pub handler: String,
    /// Inline source of the handler's file (the console's editor).
    pub code: String,
    /// A whole code package (the API's `Code.ZipFile`); when set, `code` is not used.
    pub package: Option<Vec<CodeFile>>,
    pub async_run_enable: String,
    pub config: ConfigDraft,
}

/// Validated settings that can change after creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionConfig {
    pub description: String,
    pub memory_size: u32,
    pub timeout: u32,
    pub environment: Vec<EnvVar>,
    pub trace_enable: bool,
    pub retry_num: u32,
    pub msg_ttl: u32,
    pub qps_limit: u32,
    pub public_net: bool,
}

/// A validated new function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFunction {
    pub name: String,
    pub runtime: &'static Runtime,
    pub handler: String,
    pub files: Vec<CodeFile>,
    pub async_run_enable: bool,
    pub config: FunctionConfig,
}

/// Validated code: the handler and the files to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeUpdate {
    pub handler: String,
    pub files: Vec<CodeFile>,
    /// A whole package replaces every file; an edit in the console writes only its file.
    pub replace_all: bool,
}

impl FunctionDraft {
    /// A blank function of the newest runtime this machine has, with SCF's defaults.
    pub fn with_defaults(runtime: &str, handler: &str, code: &str, async_run: bool) -> Self {
        FunctionDraft {
            function_name: String::new(),
            runtime: runtime.to_string(),
            handler: handler.to_string(),
            code: code.to_string(),
            package: None,
            async_run_enable: bool_str(async_run).to_string(),
            config: ConfigDraft {
                description: String::new(),
                memory_size: MEMORY_DEFAULT.to_string(),
                timeout: TIMEOUT_DEFAULT.to_string(),
                environment: Vec::new(),
                trace_enable: bool_str(async_run).to_string(),
                retry_num: String::new(),
                msg_ttl: MSG_TTL_DEFAULT.to_string(),
                qps_limit: QPS_LIMIT_DEFAULT.to_string(),
                public_net: bool_str(true).to_string(),
            },
        }
    }

    pub fn is_async(&self) -> bool {
        parse_flag(&self.async_run_enable) == Some(true)
    }
}

impl ConfigDraft {
    pub fn is_trace_enabled(&self) -> bool {
        parse_flag(&self.trace_enable) == Some(true)
    }
}

/// SCF spells booleans of function settings as the strings `TRUE` / `FALSE`.
pub fn bool_str(b: bool) -> &'static str {
    if b { "TRUE" } else { "FALSE" }
}

/// `TRUE`/`FALSE` (any case); an empty value is `FALSE`, as an unticked checkbox sends nothing.
pub fn parse_flag(s: &str) -> Option<bool> {
    match s.trim() {
        "" => Some(false),
        v if v.eq_ignore_ascii_case("TRUE") => Some(true),
        v if v.eq_ignore_ascii_case("FALSE") => Some(false),
        _ => None,
    }
}

pub fn validate_function_name(name: &str) -> Result<(), FieldError> {
    let len = name.chars().count();
    if name.is_empty() {
        return Err(FieldError::new(
            "FunctionName",
            "MissingParameter",
            "Enter a function name.",
        ));
    }
    if !(2..=60).contains(&len) || !is_scf_identifier(name) {
        return Err(FieldError::new(
            "FunctionName",
            "InvalidParameterValue.FunctionName",
            "Function names are 2-60 characters of letters, digits, - and _, start with a letter and end with a letter or digit.",
        ));
    }
    Ok(())
}

pub fn validate_handler(handler: &str) -> Result<(), FieldError> {
    let bad = || {
        FieldError::new(
            "Handler",
            "InvalidParameterValue.Handler",
            "The handler is file.method (e.g. index.main_handler): 2-60 characters; each part starts and ends with a letter and may contain letters, digits, _ and -.",
        )
    };
    if handler.is_empty() {
        return Err(FieldError::new(
            "Handler",
            "MissingParameter",
            "Enter a handler, e.g. index.main_handler.",
        ));
    }
    if !(2..=60).contains(&handler.chars().count()) {
        return Err(bad());
    }
    let (file, method) = handler.split_once('.').ok_or_else(bad)?;
    let part_ok = |p: &str| {
        let b = p.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphabetic()
            && b[b.len() - 1].is_ascii_alphabetic()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
    };
    if part_ok(file) && part_ok(method) {
        Ok(())
    } else {
        Err(bad())
    }
}

/// The source file a handler names: `index.main_handler` on Python is `index.py`.
pub fn handler_file(handler: &str, runtime: &Runtime) -> String {
    let file = handler.split_once('.').map_or(handler, |(f, _)| f);
    format!("{file}.{}", runtime.language.extension())
}

fn validate_runtime(
    name: &str,
    interpreters: &Interpreters,
) -> Result<&'static Runtime, FieldError> {
    if name.is_empty() {
        return Err(FieldError::new(
            "Runtime",
            "MissingParameter.Runtime",
            "Choose a runtime.",
        ));
    }
    let runtime = Runtime::by_name(name).ok_or_else(|| {
        FieldError::new(
            "Runtime",
            "InvalidParameterValue.Runtime",
            format!("{name} is not a runtime this console offers."),
        )
    })?;
    match interpreters.availability(runtime) {
        super::runtime::Availability::Available { .. } => Ok(runtime),
        super::runtime::Availability::Unavailable { reason } => Err(FieldError::new(
            "Runtime",
            "InvalidParameterValue.Runtime",
            format!("{name} is unavailable: {reason}."),
        )),
    }
}

fn validate_package(files: &[CodeFile]) -> Result<(), FieldError> {
    if files.is_empty() {
        return Err(FieldError::new(
            "Code",
            "InvalidParameterValue.Code",
            "The code package holds no files.",
        ));
    }
    let total: usize = files.iter().map(|f| f.content.len()).sum();
    if total > PACKAGE_MAX_BYTES {
        return Err(FieldError::new(
            "Code",
            "InvalidParameterValue.Code",
            format!(
                "The code package unpacks to {} MB; at most {} MB are allowed.",
                total / (1024 * 1024),
                PACKAGE_MAX_BYTES / (1024 * 1024)
            ),
        ));
    }
    Ok(())
}

/// A package must hold the file its handler names, or the function could never load.
fn package_has_handler(
    files: &[CodeFile],
    handler: &str,
    runtime: &Runtime,
) -> Result<(), FieldError> {
    let entry = handler_file(handler, runtime);
    if files.is_empty() || files.iter().any(|f| f.path == entry) {
        return Ok(());
    }
    let mut held: Vec<&str> = files.iter().take(5).map(|f| f.path.as_str()).collect();
    if files.len() > 5 {
        held.push("…");
    }
    Err(FieldError::new(
        "Handler",
        "InvalidParameterValue.Handler",
        format!(
            "The handler {handler} needs {entry} in the code package, which holds {}.",
            held.join(", ")
        ),
    ))
}

fn validate_code(code: &str) -> Result<(), FieldError> {
    if code.trim().is_empty() {
        return Err(FieldError::new(
            "Code",
            "MissingParameter.Code",
            "The function needs code: write the handler here.",
        ));
    }
    if code.len() > CODE_MAX_BYTES {
        return Err(FieldError::new(
            "Code",
            "InvalidParameterValue.Code",
            format!(
                "The code is {} KB; inline code is limited to {} KB.",
                code.len() / 1024,
                CODE_MAX_BYTES / 1024
            ),
        ));
    }
    Ok(())
}

/// Parses a whole number, or takes the default when the field was left empty.
fn number(raw: &str, default: u32, field: &'static str, what: &str) -> Result<u32, FieldError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(default);
    }
    raw.parse::<u32>().map_err(|_| {
        FieldError::new(
            field,
            match field {
                "MemorySize" => "InvalidParameterValue.MemorySize",
                "Timeout" => "InvalidParameterValue.Timeout",
                "RetryNum" => "InvalidParameterValue.AsyncTriggerConfig",
                "MsgTTL" => "InvalidParameterValue.AsyncTriggerConfig",
                "QpsLimit" => "InvalidParameterValue.QpsLimit",
                _ => "InvalidParameterValue",
            },
            format!("{what} must be a whole number."),
        )
    })
}

fn validate_memory(raw: &str) -> Result<u32, FieldError> {
    let mb = number(raw, MEMORY_DEFAULT, "MemorySize", "Memory")?;
    if mb > 3072 {
        return Err(FieldError::new(
            "MemorySize",
            "LimitExceeded.Memory",
            "Memory is at most 3072 MB.",
        ));
    }
    if mb == 64 || (mb >= 128 && mb % 128 == 0) {
        Ok(mb)
    } else {
        Err(FieldError::new(
            "MemorySize",
            "InvalidParameterValue.MemorySize",
            "Memory is 64 MB, or 128 to 3072 MB in steps of 128 MB.",
        ))
    }
}

fn validate_timeout(raw: &str, async_run: bool) -> Result<u32, FieldError> {
    let secs = number(raw, TIMEOUT_DEFAULT, "Timeout", "Timeout")?;
    let max = if async_run {
        TIMEOUT_MAX_ASYNC
    } else {
        TIMEOUT_MAX
    };
    if (1..=max).contains(&secs) {
        Ok(secs)
    } else if async_run {
        Err(FieldError::new(
            "Timeout",
            "LimitExceeded.Timeout",
            "Timeout is 1 to 86400 seconds (24 hours) for a function with async execution.",
        ))
    } else {
        Err(FieldError::new(
            "Timeout",
            "LimitExceeded.Timeout",
            "Timeout is 1 to 900 seconds; with async execution a function may run up to 86400 seconds.",
        ))
    }
}

/// Variables the runtime sets for every instance (its paths and SCF's context): a function's
/// own variable of that name would be overwritten, or would break the runtime.
pub const RUNTIME_ENV_KEYS: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "LANG",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
];
/// Prefixes of SCF's own variables (`SCF_FUNCTIONNAME`, `TENCENTCLOUD_REGION`, …).
pub const RUNTIME_ENV_PREFIXES: &[&str] = &["SCF_", "TENCENTCLOUD_", "QCLOUD_"];

fn validate_environment(vars: &[EnvVar]) -> Result<Vec<EnvVar>, FieldError> {
    let bad = |message: String| {
        FieldError::new("Environment", "InvalidParameterValue.Environment", message)
    };
    let mut kept: Vec<EnvVar> = Vec::new();
    for (i, var) in vars.iter().enumerate() {
        let row = i + 1;
        let key = var.key.trim();
        // A row left entirely blank is a spare form row, not a variable.
        if key.is_empty() && var.value.is_empty() {
            continue;
        }
        if key.is_empty() {
            return Err(bad(format!("Variable {row}: enter a key.")));
        }
        let b = key.as_bytes();
        if !(b[0].is_ascii_alphabetic() || b[0] == b'_')
            || !b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            return Err(bad(format!(
                "Variable {row}: the key {key} may contain only letters, digits and _ and must not start with a digit."
            )));
        }
        if RUNTIME_ENV_KEYS.contains(&key)
            || RUNTIME_ENV_PREFIXES.iter().any(|p| key.starts_with(p))
        {
            return Err(bad(format!(
                "Variable {row}: {key} is set by the runtime for every instance; choose another key (keys starting with SCF_, TENCENTCLOUD_ or QCLOUD_ are the platform's)."
            )));
        }
        if var.value.is_empty() {
            return Err(bad(format!("Variable {row} ({key}): enter a value.")));
        }
        if kept.iter().any(|k| k.key == key) {
            return Err(bad(format!(
                "Variable {row}: the key {key} is already set above."
            )));
        }
        kept.push(EnvVar {
            key: key.to_string(),
            value: var.value.clone(),
        });
    }
    let total: usize = kept.iter().map(|v| v.key.len() + v.value.len()).sum();
    if total >= ENVIRONMENT_MAX_BYTES {
        return Err(FieldError::new(
            "Environment",
            "InvalidParameterValue.EnvironmentExceededLimit",
            format!(
                "Environment variables total {total} bytes; keys and values together must stay under 4 KB."
            ),
        ));
    }
    Ok(kept)
}

/// Checks the settings that can change after creation. `async_run` is fixed at creation and
/// decides the timeout allowance and whether status trace may be on.
pub fn validate_config(
    draft: &ConfigDraft,
    async_run: bool,
) -> Result<FunctionConfig, FieldErrors> {
    let mut errors = FieldErrors::default();
    let check = |r: Result<u32, FieldError>, errors: &mut FieldErrors| match r {
        Ok(v) => v,
        Err(e) => {
            errors.push(e);
            0
        }
    };

    let description = draft.description.trim().to_string();
    if description.chars().count() > DESCRIPTION_MAX_CHARS {
        errors.push(FieldError::new(
            "Description",
            "InvalidParameterValue.Description",
            format!(
                "The description is {} characters; at most {DESCRIPTION_MAX_CHARS} are allowed.",
                description.chars().count()
            ),
        ));
    }
    let memory_size = check(validate_memory(&draft.memory_size), &mut errors);
    let timeout = check(validate_timeout(&draft.timeout, async_run), &mut errors);
    let environment = validate_environment(&draft.environment).unwrap_or_else(|e| {
        errors.push(e);
        Vec::new()
    });
    let trace_enable = match parse_flag(&draft.trace_enable) {
        Some(true) if !async_run => {
            errors.push(FieldError::new(
                "TraceEnable",
                "InvalidParameterValue.TraceEnable",
                "Status trace needs async execution, which is chosen when the function is created.",
            ));
            false
        }
        Some(v) => v,
        None => {
            errors.push(FieldError::new(
                "TraceEnable",
                "InvalidParameterValue.TraceEnable",
                "TraceEnable is TRUE or FALSE.",
            ));
            false
        }
    };
    let retry_default = if async_run {
        RETRY_NUM_DEFAULT_ASYNC
    } else {
        RETRY_NUM_DEFAULT
    };
    let retry_num = check(
        number(&draft.retry_num, retry_default, "RetryNum", "Retries").and_then(|n| {
            if n <= RETRY_NUM_MAX {
                Ok(n)
            } else {
                Err(FieldError::new(
                    "RetryNum",
                    "LimitExceeded.RetryNum",
                    "Retries are 0 to 2.",
                ))
            }
        }),
        &mut errors,
    );
    let msg_ttl = check(
        number(&draft.msg_ttl, MSG_TTL_DEFAULT, "MsgTTL", "Maximum wait").and_then(|n| {
            if (MSG_TTL_MIN..=MSG_TTL_MAX).contains(&n) {
                Ok(n)
            } else {
                Err(FieldError::new(
                    "MsgTTL",
                    "LimitExceeded.MsgTTL",
                    "The longest an event may wait is 60 to 21600 seconds (6 hours).",
                ))
            }
        }),
        &mut errors,
    );

    let qps_limit = check(
        number(
            &draft.qps_limit,
            QPS_LIMIT_DEFAULT,
            "QpsLimit",
            "The QPS limit",
        )
        .and_then(|n| {
            if (1..=QPS_LIMIT_MAX).contains(&n) {
                Ok(n)
            } else {
                Err(FieldError::new(
                    "QpsLimit",
                    "InvalidParameterValue.QpsLimit",
                    "The QPS limit is 1 to 100000 invocations per second.",
                ))
            }
        }),
        &mut errors,
    );

    let public_net = parse_flag(&draft.public_net).unwrap_or_else(|| {
        errors.push(FieldError::new(
            "PublicNetConfig",
            "InvalidParameterValue.PublicNetConfig",
            "Public network access is on (TRUE) or off (FALSE).",
        ));
        true
    });

    errors.into_result(FunctionConfig {
        description,
        memory_size,
        timeout,
        environment,
        trace_enable,
        retry_num,
        msg_ttl,
        qps_limit,
        public_net,
    })
}

/// How many events at once a reservation of `mem` MB is for a function of `memory_size` MB.
/// SCF reserves concurrency as memory: a 1024 MB reservation is 8 events of a 128 MB function,
/// and 4 once its memory is raised to 256 MB.
pub fn reserved_events(mem: u32, memory_size: u32) -> u32 {
    mem / memory_size.max(1)
}

/// Checks a reservation as typed, for a function of `memory_size` MB on a console that runs
/// `slots` events at once, of which other functions reserve `others`. Every slot but one may
/// be reserved: functions without a reservation always keep at least one.
pub fn validate_reservation(
    raw: &str,
    memory_size: u32,
    others: u32,
    slots: u32,
) -> Result<u32, FieldError> {
    const FIELD: &str = "ReservedConcurrencyMem";
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(FieldError::new(
            FIELD,
            "MissingParameter",
            "Enter the reserved concurrency in MB (0 stops the function from running).",
        ));
    }
    let mem: u32 = raw.parse().map_err(|_| {
        FieldError::new(
            FIELD,
            "InvalidParameterValue.ReservedConcurrencyMem",
            "Reserved concurrency is a whole number of MB, 0 or more.",
        )
    })?;
    let events = reserved_events(mem, memory_size);
    let reservable = slots.saturating_sub(1);
    let at_most = |events: u32| u64::from(events) * u64::from(memory_size);
    if events > reservable {
        return Err(FieldError::new(
            FIELD,
            "LimitExceeded.FunctionReservedConcurrencyMemory",
            format!(
                "{mem} MB is {events} events at once at {memory_size} MB each; this console runs \
                 {slots} at once and keeps one for functions without a reservation, so reserve \
                 at most {} MB.",
                at_most(reservable)
            ),
        ));
    }
    if others.saturating_add(events) > reservable {
        let left = reservable.saturating_sub(others);
        return Err(FieldError::new(
            FIELD,
            // SCF's list for PutReservedConcurrencyConfig has one code for both limits.
            "LimitExceeded.FunctionReservedConcurrencyMemory",
            format!(
                "Other functions reserve {others} of the {slots} events this console runs at \
                 once and one stays unreserved, so this function can reserve at most {left} \
                 ({} MB at {memory_size} MB each).",
                at_most(left)
            ),
        ));
    }
    Ok(mem)
}

/// Checks a new function. The name's uniqueness is the store's to check, at insert.
pub fn validate_new_function(
    draft: &FunctionDraft,
    interpreters: &Interpreters,
) -> Result<NewFunction, FieldErrors> {
    let mut errors = FieldErrors::default();
    let name = draft.function_name.trim().to_string();
    if let Err(e) = validate_function_name(&name) {
        errors.push(e);
    }
    let runtime = validate_runtime(draft.runtime.trim(), interpreters)
        .map_err(|e| errors.push(e))
        .ok();
    let handler = draft.handler.trim().to_string();
    if let Err(e) = validate_handler(&handler) {
        errors.push(e);
    }
    let code_check = match &draft.package {
        Some(files) => validate_package(files),
        None => validate_code(&draft.code),
    };
    if let Err(e) = code_check {
        errors.push(e);
    }
    if let (Some(files), Some(runtime)) = (&draft.package, runtime)
        && validate_handler(&handler).is_ok()
        && let Err(e) = package_has_handler(files, &handler, runtime)
    {
        errors.push(e);
    }
    let async_run_enable = parse_flag(&draft.async_run_enable).unwrap_or_else(|| {
        errors.push(FieldError::new(
            "AsyncRunEnable",
            "InvalidParameterValue.AsyncRunEnable",
            "AsyncRunEnable is TRUE or FALSE.",
        ));
        false
    });
    let config = validate_config(&draft.config, async_run_enable)
        .map_err(|e| e.iter().for_each(|e| errors.push(e.clone())))
        .ok();
    match (runtime, config) {
        (Some(runtime), Some(config)) if errors.is_empty() => Ok(NewFunction {
            files: draft.package.clone().unwrap_or_else(|| {
                vec![CodeFile {
                    path: handler_file(&handler, runtime),
                    content: draft.code.clone().into_bytes(),
                }]
            }),
            name,
            runtime,
            handler,
            async_run_enable,
            config,
        }),
        _ => Err(errors),
    }
}

/// New code: the source of the handler's file, or a whole package.
pub enum CodeInput<'a> {
    Inline(&'a str),
    /// The source of one other file of the package (the Code tab's file list); the service
    /// checks it exists and that the handler's file is still there.
    File {
        path: &'a str,
        text: &'a str,
    },
    Package(Vec<CodeFile>),
}

/// Checks a code update: inline source for the handler's file (the Code tab), or a whole
/// package (the API).
pub fn validate_code_update(
    handler: &str,
    runtime: &Runtime,
    code: CodeInput<'_>,
) -> Result<CodeUpdate, FieldErrors> {
    let mut errors = FieldErrors::default();
    let handler = handler.trim().to_string();
    if let Err(e) = validate_handler(&handler) {
        errors.push(e);
    }
    let (files, replace_all) = match code {
        CodeInput::Inline(text) => {
            if let Err(e) = validate_code(text) {
                errors.push(e);
            }
            let file = CodeFile {
                path: handler_file(&handler, runtime),
                content: text.as_bytes().to_vec(),
            };
            (vec![file], false)
        }
        // Another file of the package may be empty (`__init__.py`); only the size is bound.
        CodeInput::File { path, text } => {
            if !text.trim().is_empty()
                && let Err(e) = validate_code(text)
            {
                errors.push(e);
            }
            let file = CodeFile {
                path: path.to_string(),
                content: text.as_bytes().to_vec(),
            };
            (vec![file], false)
        }
        CodeInput::Package(package) => {
            if let Err(e) = validate_package(&package) {
                errors.push(e);
            } else if validate_handler(&handler).is_ok()
                && let Err(e) = package_has_handler(&package, &handler, runtime)
            {
                errors.push(e);
            }
            (package, true)
        }
    };
    errors.into_result(CodeUpdate {
        handler,
        files,
        replace_all,
    })
}

/// Where a function lives: region, namespace and name together identify it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FunctionKey {
    pub region: String,
    pub namespace: String,
    pub name: String,
}

/// A stored function's settings (its code is read separately, only where it is shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    pub id: i64,
    pub region: String,
    pub namespace: String,
    pub name: String,
    pub runtime: String,
    pub handler: String,
    pub description: String,
    pub memory_size: u32,
    pub timeout: u32,
    pub environment: Vec<EnvVar>,
    pub async_run_enable: bool,
    pub trace_enable: bool,
    pub retry_num: u32,
    pub msg_ttl: u32,
    pub qps_limit: u32,
    /// Whether its instances may reach the network.
    pub public_net: bool,
    /// Its reserved concurrency in MB, as SCF counts it; see [`reserved_events`].
    pub reserved_mem: Option<u32>,
    /// When status trace was last turned off; its records age out from then.
    pub trace_disabled_at: Option<Millis>,
    pub created_at: Millis,
    pub modified_at: Millis,
    /// When it was deleted: its events stay readable a while (72 hours), nothing else of it.
    pub deleted_at: Option<Millis>,
}

impl Function {
    pub fn runtime(&self) -> Option<&'static Runtime> {
        Runtime::by_name(&self.runtime)
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// The stored settings as a draft: where edits (console or API) start from.
    pub fn config_draft(&self) -> ConfigDraft {
        ConfigDraft {
            description: self.description.clone(),
            memory_size: self.memory_size.to_string(),
            timeout: self.timeout.to_string(),
            environment: self.environment.clone(),
            trace_enable: bool_str(self.trace_enable).into(),
            retry_num: self.retry_num.to_string(),
            msg_ttl: self.msg_ttl.to_string(),
            qps_limit: self.qps_limit.to_string(),
            public_net: bool_str(self.public_net).into(),
        }
    }

    /// How many of its events may run at once when it has a reservation.
    pub fn reserved_events(&self) -> Option<u32> {
        self.reserved_mem
            .map(|mem| reserved_events(mem, self.memory_size))
    }

    /// When the function's event records start to age out after a save with `trace_enable`:
    /// from now when status trace is turned off, never while it is on, and still from when
    /// it was turned off while it stays off.
    pub fn trace_disabled_after(&self, trace_enable: bool, now: Millis) -> Option<Millis> {
        match (self.trace_enable, trace_enable) {
            (_, true) => None,
            (true, false) => Some(now),
            (false, false) => self.trace_disabled_at,
        }
    }

    pub fn key(&self) -> FunctionKey {
        FunctionKey {
            region: self.region.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::runtime::Interpreter;

    fn machine() -> Interpreters {
        Interpreters {
            python: Some(Interpreter {
                command: "python3".into(),
                version: (3, 11, 2),
            }),
            nodejs: Some(Interpreter {
                command: "node".into(),
                version: (20, 1, 0),
            }),
        }
    }

    fn draft() -> FunctionDraft {
        let mut d = FunctionDraft::with_defaults(
            "Python3.10",
            "index.main_handler",
            "def main_handler(event, context):\n    return event\n",
            false,
        );
        d.function_name = "hello-world".into();
        d
    }

    fn codes(draft: &FunctionDraft) -> Vec<&'static str> {
        match validate_new_function(draft, &machine()) {
            Ok(_) => vec![],
            Err(e) => e.iter().map(|e| e.code).collect(),
        }
    }

    #[test]
    fn a_default_draft_is_valid_with_scf_defaults() {
        let f = validate_new_function(&draft(), &machine()).unwrap();
        assert_eq!(f.config.memory_size, 128);
        assert_eq!(f.config.timeout, 3);
        assert_eq!(f.config.retry_num, 2);
        assert_eq!(f.config.msg_ttl, 21600);
        assert!(!f.async_run_enable && !f.config.trace_enable);
    }

    #[test]
    fn reservations_are_memory_and_leave_one_slot_unreserved() {
        assert_eq!(reserved_events(1024, 128), 8);
        assert_eq!(reserved_events(1000, 256), 3);
        assert_eq!(validate_reservation("1024", 128, 0, 16), Ok(1024));
        assert_eq!(validate_reservation("0", 128, 15, 16), Ok(0));
        let code = |raw: &str, others| validate_reservation(raw, 128, others, 16).unwrap_err().code;
        assert_eq!(code("", 0), "MissingParameter");
        for bad in ["-1", "1.5", "lots", "1000000000000000"] {
            assert_eq!(
                code(bad, 0),
                "InvalidParameterValue.ReservedConcurrencyMem",
                "{bad}"
            );
        }
        // 16 slots: 15 may be reserved, 1920 MB at 128 MB.
        assert!(validate_reservation("1920", 128, 0, 16).is_ok());
        assert_eq!(
            code("2048", 0),
            "LimitExceeded.FunctionReservedConcurrencyMemory"
        );
        assert_eq!(
            code("1024", 8),
            "LimitExceeded.FunctionReservedConcurrencyMemory"
        );
        assert!(validate_reservation("896", 128, 8, 16).is_ok());
    }

    #[test]
    fn function_names() {
        for ok in ["ab", "a1", "my-func_2", &"a".repeat(60)] {
            assert!(validate_function_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "a",
            "1abc",
            "abc-",
            "abc_",
            "a b",
            "ab.c",
            "中文名",
            &"a".repeat(61),
        ] {
            assert_eq!(
                validate_function_name(bad).unwrap_err().code,
                "InvalidParameterValue.FunctionName",
                "{bad}"
            );
        }
    }

    #[test]
    fn handlers() {
        for ok in ["index.main_handler", "app.handle", "my-file.run-it"] {
            assert!(validate_handler(ok).is_ok(), "{ok}");
        }
        for bad in [
            "index",
            ".main",
            "index.",
            "1index.main",
            "index.main1",
            "a.b.c",
            "in dex.main",
        ] {
            assert_eq!(
                validate_handler(bad).unwrap_err().code,
                "InvalidParameterValue.Handler",
                "{bad}"
            );
        }
    }

    #[test]
    fn memory_steps_and_limit() {
        for ok in ["64", "128", "256", "3072", ""] {
            assert!(validate_memory(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            validate_memory("100").unwrap_err().code,
            "InvalidParameterValue.MemorySize"
        );
        assert_eq!(
            validate_memory("0").unwrap_err().code,
            "InvalidParameterValue.MemorySize"
        );
        assert_eq!(
            validate_memory("3200").unwrap_err().code,
            "LimitExceeded.Memory"
        );
        assert_eq!(
            validate_memory("lots").unwrap_err().code,
            "InvalidParameterValue.MemorySize"
        );
    }

    #[test]
    fn timeout_allows_a_day_only_with_async_execution() {
        assert!(validate_timeout("900", false).is_ok());
        assert_eq!(
            validate_timeout("901", false).unwrap_err().code,
            "LimitExceeded.Timeout"
        );
        assert_eq!(
            validate_timeout("0", false).unwrap_err().code,
            "LimitExceeded.Timeout"
        );
        assert!(validate_timeout("86400", true).is_ok());
        assert_eq!(
            validate_timeout("86401", true).unwrap_err().code,
            "LimitExceeded.Timeout"
        );
    }

    #[test]
    fn status_trace_needs_async_execution() {
        let mut d = draft();
        d.config.trace_enable = "TRUE".into();
        assert_eq!(codes(&d), vec!["InvalidParameterValue.TraceEnable"]);
        d.async_run_enable = "TRUE".into();
        let f = validate_new_function(&d, &machine()).unwrap();
        assert!(f.async_run_enable && f.config.trace_enable);
        assert_eq!(
            f.config.retry_num, 0,
            "async functions are not retried by default"
        );
    }

    #[test]
    fn environment_rules() {
        let var = |k: &str, v: &str| EnvVar {
            key: k.into(),
            value: v.into(),
        };
        assert_eq!(
            validate_environment(&[var("A", "1"), var("", "")]).unwrap(),
            vec![var("A", "1")]
        );
        for bad in [
            vec![var("", "x")],
            vec![var("A", "")],
            vec![var("1A", "x")],
            vec![var("A", "1"), var("A", "2")],
            // Set by the runtime: the user's value would be lost or break the instance.
            vec![var("PATH", "/opt/bin")],
            vec![var("SCF_RUNTIME", "x")],
            vec![var("TENCENTCLOUD_REGION", "x")],
        ] {
            assert_eq!(
                validate_environment(&bad).unwrap_err().code,
                "InvalidParameterValue.Environment"
            );
        }
        assert_eq!(
            validate_environment(&[var("BIG", &"x".repeat(4093))])
                .unwrap_err()
                .code,
            "InvalidParameterValue.EnvironmentExceededLimit"
        );
        assert!(validate_environment(&[var("BIG", &"x".repeat(4092))]).is_ok());
        assert!(validate_environment(&[var("MY_PATH", "x"), var("SCFX", "y")]).is_ok());
    }

    #[test]
    fn every_broken_rule_is_reported_at_once() {
        let mut d = draft();
        d.function_name = "1bad".into();
        d.config.memory_size = "100".into();
        d.config.description = "x".repeat(1001);
        d.config.retry_num = "3".into();
        d.config.msg_ttl = "10".into();
        assert_eq!(
            codes(&d),
            vec![
                "InvalidParameterValue.FunctionName",
                "InvalidParameterValue.Description",
                "InvalidParameterValue.MemorySize",
                "LimitExceeded.RetryNum",
                "LimitExceeded.MsgTTL",
            ]
        );
    }

    #[test]
    fn runtimes_must_exist_and_be_runnable_here() {
        let mut d = draft();
        d.runtime = "Python3.12".into();
        assert_eq!(codes(&d), vec!["InvalidParameterValue.Runtime"]);
        d.runtime = "Cobol1.0".into();
        assert_eq!(codes(&d), vec!["InvalidParameterValue.Runtime"]);
        d.runtime = String::new();
        assert_eq!(codes(&d), vec!["MissingParameter.Runtime"]);
    }

    #[test]
    fn handler_file_follows_runtime() {
        let py = Runtime::by_name("Python3.9").unwrap();
        let js = Runtime::by_name("Nodejs18.15").unwrap();
        assert_eq!(handler_file("index.main_handler", py), "index.py");
        assert_eq!(handler_file("app.run", js), "app.js");
    }
}
