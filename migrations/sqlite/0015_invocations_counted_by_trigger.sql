-- Each accepted invocation counts once against its namespace's invocation quota, in the same
-- statement that stores it: a batch of accepts is then a single statement, which SQLite
-- commits by itself, instead of a transaction of an insert and an update.
CREATE TRIGGER events_count_invocations AFTER INSERT ON events BEGIN
    UPDATE namespaces SET invocations_used = invocations_used + 1
    WHERE (region, name) = (SELECT region, namespace FROM functions WHERE id = NEW.function_id);
END;
