#!/usr/bin/env node
/** The `kbs` command. */
import { main } from './main.js';
import type { Io } from './policy.js';

const io: Io = { out: (l) => process.stdout.write(l + '\n'), err: (l) => process.stderr.write(l + '\n') };
process.exitCode = await main(process.argv.slice(2), io);
