// MCP tasks (2025-11-25): the facts the gateway's parts share about them. Task ids are the backend's,
// shared by every session of a shared backend, so each part that scopes them per session keeps the
// same per-session bound.

/** The task methods a client uses on one task, named by its id (`params.taskId`). */
export const TASK_METHODS: ReadonlySet<string> = new Set(['tasks/get', 'tasks/result', 'tasks/cancel']);

/** Tasks remembered per session; the oldest is forgotten beyond this (the backend expires them by ttl anyway). */
export const MAX_TASKS_PER_SESSION = 1_000;
