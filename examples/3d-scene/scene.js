// Scene model: the objects of one 3D scene, the zod schemas that validate them, and a 'change' event.
import { EventEmitter } from 'node:events';
import { z } from 'zod';

export const SHAPES = /** @type {const} */ (['box', 'sphere', 'cylinder', 'cone', 'torus', 'plane']);
export const MAX_OBJECTS = 500;

const COORD_LIMIT = 10_000;
const MAX_SCALE = 1_000;
// Default colors cycle through a palette so that several default objects stay distinguishable.
const PALETTE = ['#4f9dff', '#ff8a3d', '#5fd38d', '#f25f7a', '#b48cff', '#ffd34f'];

const coordinate = z.number().min(-COORD_LIMIT).max(COORD_LIMIT);
const vec3 = (item) => z.array(item).length(3);

/** Zod shapes for an object's fields, all optional: tools build their input schemas from them. */
export const objectFields = {
  shape: z
    .enum(SHAPES)
    .optional()
    .describe('Geometry: box, sphere, cylinder, cone, torus or plane. Default box.'),
  name: z
    .string()
    .trim()
    .min(1)
    .max(64)
    .refine((name) => !/\p{Cc}/u.test(name), 'name must not contain control characters')
    .optional()
    .describe('Unique display name. Default "<shape>-<n>".'),
  position: vec3(coordinate).optional().describe('[x, y, z] in scene units. Default [0, 0, 0].'),
  rotation: vec3(z.number().min(-36_000).max(36_000))
    .optional()
    .describe('[x, y, z] Euler angles in degrees. Default [0, 0, 0].'),
  scale: vec3(z.number().positive().max(MAX_SCALE))
    .optional()
    .describe('[x, y, z] scale factors, each > 0. Default [1, 1, 1].'),
  color: z
    .string()
    .regex(/^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$/, 'color must be a CSS hex color like "#ff8800"')
    .optional()
    .describe('CSS hex color like "#ff8800". Default: from a palette.'),
};

/** An object as `toJSON` writes it, every field there (a saved scene read back). */
const savedObject = z.object({
  id: z.string().regex(/^obj-\d{1,9}$/),
  name: objectFields.name.unwrap(),
  shape: objectFields.shape.unwrap(),
  position: objectFields.position.unwrap(),
  rotation: objectFields.rotation.unwrap(),
  scale: objectFields.scale.unwrap(),
  color: objectFields.color.unwrap(),
});

/** A local error with a string code; the MCP layer turns it into a tool error result. */
export class SceneError extends Error {
  /** @param {'not_found' | 'conflict' | 'invalid' | 'full'} code @param {string} message */
  constructor(code, message) {
    super(message);
    this.name = 'SceneError';
    this.code = code;
  }
}

/** "#F80" → "#ff8800", so that the stored scene has one spelling per color. */
function normalizeColor(color) {
  const hex = color.slice(1).toLowerCase();
  return hex.length === 3 ? `#${[...hex].map((c) => c + c).join('')}` : `#${hex}`;
}

export class Scene extends EventEmitter {
  /** @type {Map<string, object>} */
  #objects = new Map();
  #nextId = 1;
  #version = 0;

  /** @param {string} title */
  constructor(title) {
    super();
    this.title = title;
  }

  /** Adds an object, filling defaults; returns a copy of it with its generated id. */
  add(fields) {
    if (this.#objects.size >= MAX_OBJECTS) {
      throw new SceneError('full', `The scene is full (${MAX_OBJECTS} objects); remove some first.`);
    }
    const n = this.#nextId++;
    const shape = fields.shape ?? 'box';
    const name = fields.name ?? this.#freeName(`${shape}-${n}`);
    this.#assertNameFree(name);
    const object = {
      id: `obj-${n}`,
      name,
      shape,
      position: fields.position ?? [0, 0, 0],
      rotation: fields.rotation ?? [0, 0, 0],
      scale: fields.scale ?? [1, 1, 1],
      color: normalizeColor(fields.color ?? PALETTE[(n - 1) % PALETTE.length]),
    };
    this.#objects.set(object.id, object);
    this.#changed();
    return structuredClone(object);
  }

  /** Changes the given fields of the object chosen by `selector`; `changes.name` renames it. */
  update(selector, changes) {
    const object = this.#find(selector);
    const fields = Object.entries(changes).filter(([, value]) => value !== undefined);
    if (fields.length === 0) {
      throw new SceneError(
        'invalid',
        'Nothing to update: give a field to change (shape, position, rotation, scale, color or a new name).',
      );
    }
    if (changes.name !== undefined && changes.name !== object.name) this.#assertNameFree(changes.name);
    for (const [key, value] of fields) object[key] = key === 'color' ? normalizeColor(value) : value;
    this.#changed();
    return structuredClone(object);
  }

  /** Removes the object chosen by `selector` and returns it. */
  remove(selector) {
    const object = this.#find(selector);
    this.#objects.delete(object.id);
    this.#changed();
    return object;
  }

  list() {
    return structuredClone([...this.#objects.values()]);
  }

  /** Removes every object; returns how many there were. */
  clear() {
    const count = this.#objects.size;
    this.#objects.clear();
    this.#changed();
    return count;
  }

  /** The number the next object's id takes: saved with the scene, so no id is ever used twice. */
  get nextId() {
    return this.#nextId;
  }

  /**
   * Puts back a scene saved earlier (`toJSON().objects` and `nextId`, read from a file); a file that
   * does not check out restores nothing. Ids go on from the saved `nextId` (or past the highest restored).
   * @param {unknown} objects @param {unknown} nextId
   */
  restore(objects, nextId) {
    const parsed = z.array(savedObject).safeParse(objects);
    if (!parsed.success) return 0;
    if (Number.isSafeInteger(nextId) && Number(nextId) > 0) this.#nextId = Number(nextId);
    this.#objects.clear();
    for (const object of parsed.data.slice(0, MAX_OBJECTS)) {
      if (this.#objects.has(object.id) || this.#findByName(object.name)) continue;
      this.#objects.set(object.id, { ...object, color: normalizeColor(object.color) });
      this.#nextId = Math.max(this.#nextId, Number(object.id.slice(4)) + 1);
    }
    this.#changed();
    return this.#objects.size;
  }

  /** The whole scene as plain data: what the resource, the viewer and the WebSocket carry. */
  toJSON() {
    return { title: this.title, version: this.#version, count: this.#objects.size, objects: this.list() };
  }

  /** @param {{ id?: string, name?: string }} selector */
  #find({ id, name }) {
    if (id === undefined && name === undefined) {
      throw new SceneError('invalid', 'Say which object: give its id or its name.');
    }
    const byId = id === undefined ? undefined : this.#objects.get(id);
    if (id !== undefined && !byId) {
      throw new SceneError(
        'not_found',
        `No object with id ${JSON.stringify(id)}; list_objects shows the ids.`,
      );
    }
    const byName = name === undefined ? undefined : this.#findByName(name);
    if (name !== undefined && !byName) {
      throw new SceneError(
        'not_found',
        `No object named ${JSON.stringify(name)}; list_objects shows the names.`,
      );
    }
    if (byId && byName && byId !== byName) {
      throw new SceneError(
        'conflict',
        `id ${JSON.stringify(id)} and name ${JSON.stringify(name)} are different objects.`,
      );
    }
    return byId ?? byName;
  }

  #findByName(name) {
    for (const object of this.#objects.values()) if (object.name === name) return object;
    return undefined;
  }

  #assertNameFree(name) {
    if (this.#findByName(name)) {
      throw new SceneError(
        'conflict',
        `An object named ${JSON.stringify(name)} already exists; names are unique.`,
      );
    }
  }

  #freeName(base) {
    let name = base;
    for (let i = 2; this.#findByName(name); i++) name = `${base}-${i}`;
    return name;
  }

  #changed() {
    this.#version++;
    this.emit('change', this.toJSON());
  }
}
