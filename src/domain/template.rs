//! Function templates: the starter functions the creation wizard offers. Each one creates a
//! valid function that runs as it is.

use super::runtime::Language;

/// A starter function: what the wizard's card shows and what it prefills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionTemplate {
    /// Stable identifier, used in the wizard's URL (`?template=python-hello-world`).
    pub id: &'static str,
    pub title: &'static str,
    pub summary: &'static str,
    pub language: Language,
    pub tags: &'static [&'static str],
    pub handler: &'static str,
    pub code: &'static str,
    /// Suggested function name; the user may change it.
    pub function_name: &'static str,
    pub timeout: u32,
    /// Made for async execution with status trace: the wizard ticks both. Async execution
    /// cannot change after creation, so only templates written for it start with it on.
    pub async_execution: bool,
}

pub const TEMPLATES: &[FunctionTemplate] = &[
    FunctionTemplate {
        id: "python-hello-world",
        title: "Hello World (Python)",
        summary: "Logs the event it receives and returns a greeting. The smallest working function.",
        language: Language::Python,
        tags: &["hello world", "getting started"],
        handler: "index.main_handler",
        code: include_str!("function_templates/python_hello_world.py"),
        function_name: "helloworld",
        timeout: 3,
        async_execution: false,
    },
    FunctionTemplate {
        id: "nodejs-hello-world",
        title: "Hello World (Node.js)",
        summary: "An async handler that logs the event and returns a greeting.",
        language: Language::Nodejs,
        tags: &["hello world", "getting started"],
        handler: "index.main_handler",
        code: include_str!("function_templates/nodejs_hello_world.js"),
        function_name: "helloworld-node",
        timeout: 3,
        async_execution: false,
    },
    FunctionTemplate {
        id: "python-long-running-task",
        title: "Long-running async task (Python)",
        summary: "Works in steps, sleeping and logging progress. Made for async execution with status trace.",
        language: Language::Python,
        tags: &["async execution", "status trace", "long running"],
        handler: "index.main_handler",
        code: include_str!("function_templates/python_long_running_task.py"),
        function_name: "long-task",
        timeout: 600,
        async_execution: true,
    },
    FunctionTemplate {
        id: "nodejs-long-running-task",
        title: "Long-running async task (Node.js)",
        summary: "Awaits a timer in steps and logs progress. Made for async execution with status trace.",
        language: Language::Nodejs,
        tags: &["async execution", "status trace", "long running"],
        handler: "index.main_handler",
        code: include_str!("function_templates/nodejs_long_running_task.js"),
        function_name: "long-task-node",
        timeout: 600,
        async_execution: true,
    },
    FunctionTemplate {
        id: "python-error",
        title: "Failing handler (Python)",
        summary: "Raises an exception from a nested call, to see how failed events show their error and stack trace.",
        language: Language::Python,
        tags: &["error", "failure", "debugging"],
        handler: "index.main_handler",
        code: include_str!("function_templates/python_error.py"),
        function_name: "failing-task",
        timeout: 3,
        async_execution: false,
    },
];

/// The skeleton an empty function starts from.
pub fn empty_code(language: Language) -> &'static str {
    match language {
        Language::Python => include_str!("function_templates/python_empty.py"),
        Language::Nodejs => include_str!("function_templates/nodejs_empty.js"),
    }
}

impl FunctionTemplate {
    pub fn by_id(id: &str) -> Option<&'static FunctionTemplate> {
        TEMPLATES.iter().find(|t| t.id == id)
    }

    /// Case-insensitive match of every word of the query against title, summary, tags and
    /// language, so "python async" finds the Python long-running task.
    pub fn matches(&self, query: &str) -> bool {
        let haystack = format!(
            "{} {} {} {}",
            self.title,
            self.summary,
            self.tags.join(" "),
            self.language.label()
        )
        .to_lowercase();
        query
            .split_whitespace()
            .all(|word| haystack.contains(&word.to_lowercase()))
    }
}

/// The templates matching a search, in catalogue order.
pub fn search(query: &str) -> Vec<&'static FunctionTemplate> {
    TEMPLATES.iter().filter(|t| t.matches(query)).collect()
}

/// Sample events offered by the Test tab.
pub const SAMPLE_EVENTS: &[(&str, &str)] = &[
    (
        "Hello World",
        "{\n  \"key1\": \"value1\",\n  \"key2\": \"value2\"\n}",
    ),
    (
        "Long-running task (5 steps of 1 s)",
        "{\n  \"steps\": 5,\n  \"interval\": 1\n}",
    ),
    (
        "Order without an amount (fails the failing handler)",
        "{\n  \"order\": {\n    \"id\": \"A-1001\"\n  }\n}",
    ),
    ("Empty event", "{}"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_matches_every_word() {
        let ids = |q: &str| search(q).iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(ids("").len(), TEMPLATES.len());
        assert_eq!(ids("python async"), vec!["python-long-running-task"]);
        assert_eq!(ids("ERROR"), vec!["python-error"]);
        assert!(ids("no such thing").is_empty());
    }
}
