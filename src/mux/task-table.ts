// Which session created each MCP task (2025-11-25 tasks) on one backend. Task ids are the backend's,
// shared by every session of a shared backend, so the gateway scopes them: a session sees and acts on
// its own tasks only, and a message that names a task (related-task `_meta`) has a certain owner.

import type { Logger } from '../log.ts';
import type { JsonRpcNotification, JsonRpcRequest, JsonRpcResponse } from '../protocol/jsonrpc.ts';
import { MAX_TASKS_PER_SESSION } from '../protocol/tasks.ts';
import type { MuxLink } from './link.ts';

/** Where a server→client message names the task it belongs to. */
const RELATED_TASK = 'io.modelcontextprotocol/related-task';

export class TaskTable {
  readonly #owners = new Map<string, MuxLink>();
  /** The process each task runs on (during a graceful restart, the old one's tasks stay there). */
  readonly #generations = new Map<string, number>();
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  owns(link: MuxLink, taskId: unknown): boolean {
    return typeof taskId === 'string' && this.#owners.get(taskId) === link;
  }

  ownerOf(taskId: unknown): MuxLink | undefined {
    return typeof taskId === 'string' ? this.#owners.get(taskId) : undefined;
  }

  /** The session whose task a backend message names in its `_meta`, if that session is still here. */
  relatedOwner(message: JsonRpcRequest | JsonRpcNotification): MuxLink | undefined {
    const related = (message.params?._meta as Record<string, unknown> | undefined)?.[RELATED_TASK];
    return this.ownerOf((related as { taskId?: unknown } | undefined)?.taskId);
  }

  /** The process task `taskId` runs on, if known. */
  generationOf(taskId: unknown): number | undefined {
    return typeof taskId === 'string' ? this.#generations.get(taskId) : undefined;
  }

  /** A result that created a task (`{ task: { taskId } }`) makes the session its owner. */
  record(link: MuxLink, result: Record<string, unknown>, generation = 0): void {
    const taskId = (result.task as { taskId?: unknown } | undefined)?.taskId;
    if (typeof taskId !== 'string') return;
    const owner = this.#owners.get(taskId);
    if (owner && owner !== link) {
      this.#log.warn(
        { user: link.user },
        'backend reused the task id of another session; the task keeps its owner',
      );
      return;
    }
    if (link.tasks.size >= MAX_TASKS_PER_SESSION) {
      const oldest: string | undefined = link.tasks.values().next().value;
      if (oldest !== undefined) this.#drop(oldest);
    }
    link.tasks.add(taskId);
    this.#owners.set(taskId, link);
    this.#generations.set(taskId, generation);
  }

  /** A tasks/list page with only the session's own tasks. */
  ownOnly(link: MuxLink, result: Record<string, unknown>, answer: JsonRpcResponse): JsonRpcResponse {
    const tasks = result.tasks;
    if (!Array.isArray(tasks)) return answer;
    const own = tasks.filter((task: unknown) =>
      this.owns(link, (task as { taskId?: unknown } | null)?.taskId),
    );
    return { ...answer, result: { ...result, tasks: own } };
  }

  /** The session left: its tasks have no owner any more. */
  forget(link: MuxLink): void {
    for (const taskId of [...link.tasks]) this.#drop(taskId);
  }

  /**
   * A backend process is gone, and its tasks with it: every process's without `gone`, else those of the
   * processes whose generation it accepts.
   */
  clear(gone: (generation: number) => boolean = () => true): void {
    for (const [taskId, generation] of [...this.#generations]) if (gone(generation)) this.#drop(taskId);
  }

  #drop(taskId: string): void {
    this.#owners.get(taskId)?.tasks.delete(taskId);
    this.#owners.delete(taskId);
    this.#generations.delete(taskId);
  }
}
