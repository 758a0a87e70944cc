/** The `kbs` command's dispatcher (the executable entry point is cli/kbs.ts). */
import { policyCommand, type Io } from './policy.js';

const USAGE = `usage: kbs <command> [options]

commands:
  policy check <file.rego>     compile a Rego policy and report the first error with its line and column
  policy eval  --policy <file.rego> --input <claims.json>
               [--data <data.json> | --request resource/<repo>/<type>/<tag>] [--query data.policy.allow]
               [--reference-values <rvs.json>] [--explain]
                               evaluate a policy like the KBS does and print the result`;

export function main(argv: string[], io: Io): number {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'policy':
      return policyCommand(rest, io);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      io.out(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      io.err(`kbs: unknown command "${cmd}"\n${USAGE}`);
      return 2;
  }
}
