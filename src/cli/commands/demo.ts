// Placeholder until the demo command lands.
import { defineCommand } from 'citty';

export const demoCommand = defineCommand({
  meta: { name: 'demo', description: 'not built yet' },
  run: () => {
    throw new Error('demo: not built yet');
  },
});
