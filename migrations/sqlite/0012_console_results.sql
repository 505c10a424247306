-- The answer of a synchronous invocation from the Test tab, kept for the page the form
-- redirects to (Post/Redirect/Get) and read once by the user who ran it. Short-lived: expired
-- rows are removed as new ones are written.
CREATE TABLE console_results (
    token_hash  TEXT    PRIMARY KEY,
    user_name   TEXT    NOT NULL,
    function_id INTEGER NOT NULL REFERENCES functions (id) ON DELETE CASCADE,
    body        TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX console_results_by_expiry ON console_results (expires_at);
