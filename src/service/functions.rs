//! Functions: look up, create, change settings or code, delete.

use super::{Missing, ServiceError, ServiceResult};
use crate::domain::function::{
    CodeInput, ConfigDraft, FunctionDraft, handler_file, reserved_events, validate_code_update,
    validate_config, validate_new_function, validate_reservation,
};
use crate::domain::rules::{FieldError, FieldErrors};
use crate::state::AppState;
use crate::store::{Function, FunctionKey, StoreError};

/// The function a key names. When it is missing, the namespace is looked at to say which of
/// the two does not exist; it is read only then, as lookups are the common case.
pub async fn get(state: &AppState, key: &FunctionKey) -> ServiceResult<Function> {
    if let Some(f) = state.store.get_function(key).await? {
        return Ok(f);
    }
    super::namespaces::get(state, &key.region, &key.namespace).await?;
    Err(ServiceError::NotFound(Missing::Function(key.clone())))
}

/// The function a key names, as an invocation reads it: from memory when it was read a moment
/// ago (see `function_cache`), so that an accept reads nothing from the store. Changes read it
/// with [`get`], fresh.
pub async fn get_to_invoke(state: &AppState, key: &FunctionKey) -> ServiceResult<Function> {
    let generation = match state.functions.get(key) {
        Ok(f) => return Ok(f),
        Err(generation) => generation,
    };
    let f = get(state, key).await?;
    state.functions.put(&f, generation);
    Ok(f)
}

/// The function a key names or, when none has that name now, the one of that name deleted
/// last that the store still keeps: a deleted function's events stay readable for 72 hours,
/// as on SCF.
pub async fn get_or_deleted(state: &AppState, key: &FunctionKey) -> ServiceResult<Function> {
    match get(state, key).await {
        Err(ServiceError::NotFound(Missing::Function(_))) => state
            .store
            .get_deleted_function(key)
            .await?
            .ok_or_else(|| ServiceError::NotFound(Missing::Function(key.clone()))),
        found => found,
    }
}

/// The refusal for a name already used in the namespace.
fn name_taken(name: &str, namespace: &str) -> FieldError {
    FieldError::new(
        "FunctionName",
        "ResourceInUse.Function",
        format!(
            "A function named {name} already exists in namespace {namespace}. Choose another name."
        ),
    )
}

/// Whether `name` is taken in the namespace, said as the refusal Complete would give, so the
/// wizard can warn while the user types.
pub async fn name_taken_in(
    state: &AppState,
    region: &str,
    namespace: &str,
    name: &str,
) -> ServiceResult<Option<FieldError>> {
    let key = FunctionKey {
        region: region.into(),
        namespace: namespace.into(),
        name: name.into(),
    };
    Ok(state
        .store
        .get_function(&key)
        .await?
        .map(|_| name_taken(name, namespace)))
}

/// Creates a function from a draft. Its name's uniqueness is decided by the store, at insert.
pub async fn create(
    state: &AppState,
    region: &str,
    namespace: &str,
    draft: &FunctionDraft,
) -> ServiceResult<Function> {
    let new = validate_new_function(draft, &state.interpreters)?;
    match state
        .store
        .create_function(region, namespace, &new, state.clock.now_millis())
        .await
    {
        Ok(f) => {
            tracing::info!(function = %f.name, namespace = %namespace, runtime = %f.runtime, "function created");
            Ok(f)
        }
        Err(StoreError::Conflict) => Err(ServiceError::Conflict(name_taken(&new.name, namespace))),
        Err(StoreError::NotFound) => Err(ServiceError::NotFound(Missing::Namespace {
            region: region.into(),
            name: namespace.into(),
        })),
        Err(e) => Err(e.into()),
    }
}

/// A store answer about a function that was there a moment ago.
fn written<T>(state: &AppState, f: &Function, result: Result<T, StoreError>) -> ServiceResult<T> {
    // Whatever the outcome, the next lookup reads the store.
    state.functions.forget(&f.key());
    result.map_err(|e| match e {
        StoreError::NotFound => ServiceError::NotFound(Missing::Function(f.key())),
        e => e.into(),
    })
}

/// Saves the settings that can change after creation; async execution stays as created.
pub async fn update_configuration(
    state: &AppState,
    f: &Function,
    draft: &ConfigDraft,
) -> ServiceResult<Function> {
    let config = validate_config(draft, f.async_run_enable)?;
    let now = state.clock.now_millis();
    let updated = written(
        state,
        f,
        state
            .store
            .update_function_config(
                &f.key(),
                &config,
                f.trace_disabled_after(config.trace_enable, now),
                now,
            )
            .await,
    )?;
    tracing::info!(function = %updated.name, trace_enable = updated.trace_enable, "configuration saved");
    // A reservation is memory: a new memory size makes it more or fewer events.
    if updated.reserved_mem.is_some() && updated.memory_size != f.memory_size {
        reservations_changed(state).await;
    }
    Ok(updated)
}

/// Sets a function's reserved concurrency (`raw`, in MB as typed): that many MB of this
/// console's concurrency, in events of the function's memory size, are kept for it alone, and
/// it runs no more than that at once.
pub async fn put_reservation(state: &AppState, f: &Function, raw: &str) -> ServiceResult<Function> {
    let others: u32 = state
        .store
        .reservations()
        .await?
        .iter()
        .filter(|r| r.function_id != f.id)
        .map(|r| reserved_events(r.reserved_mem, r.memory_size))
        .sum();
    let mem = validate_reservation(raw, f.memory_size, others, state.engine.workers())
        .map_err(|e| ServiceError::Invalid(e.into()))?;
    let updated = written(
        state,
        f,
        state
            .store
            .set_reserved_concurrency(&f.key(), Some(mem))
            .await,
    )?;
    tracing::info!(function = %f.name, namespace = %f.namespace, reserved_mb = mem, "reserved concurrency set");
    reservations_changed(state).await;
    Ok(updated)
}

/// Removes a function's reservation: it shares the unreserved concurrency again.
pub async fn delete_reservation(state: &AppState, f: &Function) -> ServiceResult<Function> {
    let updated = written(
        state,
        f,
        state.store.set_reserved_concurrency(&f.key(), None).await,
    )?;
    tracing::info!(function = %f.name, namespace = %f.namespace, "reserved concurrency removed");
    reservations_changed(state).await;
    Ok(updated)
}

/// The engine applies a changed reservation at once; should reading them fail now, its next
/// heartbeat does.
async fn reservations_changed(state: &AppState) {
    if let Err(e) = state.engine.load_reservations().await {
        tracing::warn!(error = %e, "reading reserved concurrency failed; applied at the next heartbeat");
    }
}

/// Saves a new handler and code: the handler's file (the console) or a whole package (the API).
pub async fn update_code(
    state: &AppState,
    f: &Function,
    handler: &str,
    code: CodeInput<'_>,
) -> ServiceResult<Function> {
    let runtime = f
        .runtime()
        .ok_or_else(|| anyhow::anyhow!("function {} has unknown runtime {}", f.name, f.runtime))?;
    // Another file of the package is edited in place: it must be there, and so must the
    // handler's file, or the function would no longer load.
    if let CodeInput::File { path, .. } = &code {
        let stored = state.store.get_code(f.id).await?;
        let has = |p: &str| stored.iter().any(|c| c.path == p);
        let mut errors = FieldErrors::default();
        if !has(path) {
            errors.push(FieldError::new(
                "Code",
                "InvalidParameterValue.Code",
                format!("There is no file {path} in this function's package."),
            ));
        }
        let entry = handler_file(handler.trim(), runtime);
        if entry != *path && !has(&entry) {
            errors.push(FieldError::new(
                "Handler",
                "InvalidParameterValue.Handler",
                format!("The handler's file {entry} is not in the package: name a file it has."),
            ));
        }
        if !errors.is_empty() {
            return Err(errors.into());
        }
    }
    let update = validate_code_update(handler, runtime, code)?;
    written(
        state,
        f,
        state
            .store
            .update_function_code(&f.key(), &update, state.clock.now_millis())
            .await,
    )
}

/// Deletes a function through the engine, which first ends its running events.
pub async fn delete(state: &AppState, f: &Function) -> ServiceResult<()> {
    written(state, f, state.engine.delete_function(f).await)?;
    tracing::info!(function = %f.name, namespace = %f.namespace, "function deleted");
    // Its reserved workers go back to the others at once.
    if f.reserved_mem.is_some() {
        reservations_changed(state).await;
    }
    Ok(())
}
