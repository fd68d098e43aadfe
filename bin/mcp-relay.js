#!/usr/bin/env node
// The installed entry point: the one place that turns main()'s result into an exit code.
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
