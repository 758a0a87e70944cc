/** The `kbs` command's dispatcher (the executable entry point is cli/kbs.ts). */
// Commands are imported when used: the server (koa, pino, the attestation service) and the
// configuration schema cost a few hundred milliseconds to load, which every client call would pay.
import type { Io } from './policy.js';

const USAGE = `usage: kbs <command> [options]

commands:
  serve [-c|--config-file FILE]  start the KBS (the embedded default when no file and no KBS_CONFIG_FILE)
  config set-resource --path <repo/type/tag> --resource-file F
  config delete-resource --path <repo/type/tag>
  config list-resources
  config set-resource-policy (--policy-file F | --allow-all | --deny-all | --affirming | --default)
  config get-resource-policy
  config set-attestation-policy [--type rego] [--id default_cpu] --policy-file F
  config set-sample-reference-value NAME VALUE [--as-integer | --as-bool] [--as-single-value]
  config get-reference-value --id ID
                               admin calls (--url, --admin-token-file; default ./data/admin-token)
  config gen-cert --host <name|ip>... --out-cert F --out-key F [--days N] [--force]
                               write a self-signed HTTPS certificate (EC P-256) and its key (mode 0600)
  attest [--tee-key-file K] [--init-data F]
                               RCAR with the sample attester; prints the attestation token
  get-resource --path P [--tee-key-file K --attestation-token F] [--init-data F] [--output F]
                               fetch and decrypt a secret (attests first unless a token is given)
  policy check <file.rego>     compile a Rego policy and report the first error with its line and column
  policy eval  --policy <file.rego> --input <claims.json>
               [--data <data.json> | --request resource/<repo>/<type>/<tag>] [--query data.policy.allow]
               [--reference-values <rvs.json>] [--explain]
                               evaluate a policy like the KBS does and print the result
  evidence verify --tee T --evidence F [--report-data HEX] [--init-data-digest HEX]
                  [--at RFC3339] [--collateral DIR]
                               verify TEE evidence offline like the KBS does and print its claims
  collateral fetch --dir DIR [--amd [--snp-evidence F]...] [--intel [--fmspc X | --quote F]...]
                               fill the offline collateral directory from AMD KDS / Intel PCS`;

export async function main(argv: string[], io: Io): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'policy':
      return (await import('./policy.js')).policyCommand(rest, io);
    case 'evidence':
      return (await import('./evidence.js')).evidenceCommand(rest, io);
    case 'collateral':
      return (await import('./collateral.js')).collateralCommand(rest, io);
    case 'serve':
      return (await import('./serve.js')).serveCommand(rest, io);
    case 'config': {
      if (rest[0] === 'gen-cert') return (await import('./gen-cert.js')).genCertCommand(rest.slice(1), io);
      const { configCommand, runClient } = await import('./client-commands.js');
      return runClient(() => configCommand(rest, io), io);
    }
    case 'attest': {
      const { attestCommand, runClient } = await import('./client-commands.js');
      return runClient(() => attestCommand(rest, io), io);
    }
    case 'get-resource': {
      const { getResourceCommand, runClient } = await import('./client-commands.js');
      return runClient(() => getResourceCommand(rest, io), io);
    }
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
