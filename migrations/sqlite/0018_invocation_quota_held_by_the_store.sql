-- An accept that would take its namespace past its invocation quota is refused by the
-- statement that stores it: each row is checked against the count the rows before it raised
-- (events_count_invocations, after each row), under the write lock every writer of the file
-- takes in turn. So accepts in flight at once, in one process or several, never go past the
-- quota; the message is the one the store maps back to "quota used".
CREATE TRIGGER events_within_quota BEFORE INSERT ON events
WHEN EXISTS (
    SELECT 1 FROM functions f JOIN namespaces ns ON ns.region = f.region AND ns.name = f.namespace
    WHERE f.id = NEW.function_id AND ns.invocations_used >= ns.invocation_quota)
BEGIN
    SELECT RAISE(ABORT, 'the namespace has used its invocation quota');
END;
