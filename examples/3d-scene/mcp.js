// MCP face of the scene: the tools, the scene://current resource and its subscriptions.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import {
  McpError,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { objectFields, SceneError } from './scene.js';

export const SCENE_URI = 'scene://current';
// The spec's code for "resource not found"; the SDK's ErrorCode has no name for it.
const RESOURCE_NOT_FOUND = -32002;

// Strict objects: a misspelt field ("colour") is an error the model sees, not silently ignored.
const selectorFields = {
  id: z.string().min(1).max(100).optional().describe('Id of the object, as returned by add_object.'),
  name: z.string().min(1).max(64).optional().describe('Name of the object (alternative to id).'),
};

/**
 * @param {import('./scene.js').Scene} scene
 * @param {{ viewerStatus: () => { url: string } | { error: string }, log: (line: string) => void }} options
 */
export function createSceneMcpServer(scene, { viewerStatus, log }) {
  const mcp = new McpServer(
    { name: '3d-scene', title: '3D Scene', version: '0.1.0' },
    {
      capabilities: { resources: { subscribe: true } },
      instructions:
        'Builds a 3D scene that the user watches live in a browser (get_viewer_url gives the link). ' +
        'Units are arbitrary scene units; y is up; rotations are in degrees.',
    },
  );

  /** Runs a tool body; scene errors become tool errors the model can read and fix. */
  const run = (body) => (args) => {
    try {
      return body(args);
    } catch (error) {
      if (error instanceof SceneError) return toolError(error.message);
      log(`tool failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      return toolError('Internal error in the 3d-scene server; its log has the details.');
    }
  };

  mcp.registerTool(
    'add_object',
    {
      description: 'Add a shape to the scene. Every field is optional. Returns the object with its id.',
      inputSchema: z.strictObject(objectFields),
    },
    run((fields) => dataResult('Added', { object: scene.add(fields) })),
  );

  const { name: nameField, ...otherFields } = objectFields;
  const newName = nameField.describe('New unique name for the object.');
  mcp.registerTool(
    'update_object',
    {
      description:
        'Change an object chosen by id or name: give only the fields to change; newName renames it.',
      inputSchema: z.strictObject({ ...selectorFields, newName, ...otherFields }),
    },
    run(({ id, name, newName: rename, ...changes }) =>
      dataResult('Updated', { object: scene.update({ id, name }, { ...changes, name: rename }) }),
    ),
  );

  mcp.registerTool(
    'remove_object',
    { description: 'Remove an object chosen by id or name.', inputSchema: z.strictObject(selectorFields) },
    run((selector) => dataResult('Removed', { object: scene.remove(selector) })),
  );

  mcp.registerTool(
    'list_objects',
    { description: 'List every object in the scene.', inputSchema: z.strictObject({}) },
    run(() => {
      const objects = scene.list();
      return dataResult(`${objects.length} object(s)`, { count: objects.length, objects });
    }),
  );

  mcp.registerTool(
    'clear_scene',
    { description: 'Remove every object from the scene.', inputSchema: z.strictObject({}) },
    run(() => dataResult('Cleared', { removed: scene.clear() })),
  );

  mcp.registerTool(
    'get_viewer_url',
    {
      description: 'The address of the browser page that shows the scene live.',
      inputSchema: z.strictObject({}),
    },
    run(() => {
      const status = viewerStatus();
      if ('error' in status) return toolError(`The 3D viewer is unavailable: ${status.error}`);
      return dataResult('Open this address in a browser to watch the scene live', { url: status.url });
    }),
  );

  mcp.registerResource(
    'scene',
    SCENE_URI,
    {
      title: 'Current 3D scene',
      description: 'Every object in the scene, as JSON.',
      mimeType: 'application/json',
    },
    () => ({
      contents: [
        { uri: SCENE_URI, mimeType: 'application/json', text: JSON.stringify(scene.toJSON(), null, 2) },
      ],
    }),
  );

  // McpServer has no subscribe support of its own, so the handlers go on the low-level Server.
  // A stdio server has exactly one client, so one set of subscribed URIs is the whole state.
  const subscriptions = new Set();
  mcp.server.setRequestHandler(SubscribeRequestSchema, ({ params }) => {
    if (params.uri !== SCENE_URI) {
      throw new McpError(RESOURCE_NOT_FOUND, `Resource not found: ${JSON.stringify(params.uri)}`);
    }
    subscriptions.add(params.uri);
    return {};
  });
  mcp.server.setRequestHandler(UnsubscribeRequestSchema, ({ params }) => {
    subscriptions.delete(params.uri);
    return {};
  });
  scene.on('change', () => {
    if (!subscriptions.has(SCENE_URI)) return;
    mcp.server
      .sendResourceUpdated({ uri: SCENE_URI })
      .catch((error) => log(`resources/updated not sent: ${error}`));
  });

  return mcp;
}

function dataResult(summary, data) {
  return {
    content: [{ type: 'text', text: `${summary}: ${JSON.stringify(data)}` }],
    structuredContent: data,
  };
}

function toolError(message) {
  return { content: [{ type: 'text', text: message }], isError: true };
}
