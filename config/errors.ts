/**
 * Configuration errors: `ConfigIssue` (one problem at one key path) and `ConfigError`, which
 * reports every issue of a configuration at once.
 */

/** One problem in a configuration: the key it concerns and what is wrong with it. */
export interface ConfigIssue {
  /** Full key path as written in TOML, e.g. `http_server.sockets[0]`; `` for the whole document. */
  readonly keyPath: string;
  /** What is wrong. Names keys, expected types and file paths; never echoes secret values. */
  readonly problem: string;
  /** 1-based position in the TOML text, for syntax errors. */
  readonly line?: number;
  readonly column?: number;
}

/**
 * A configuration that cannot be used. `message` lists every issue found as `<key path>: <problem>`
 * (prefixed by the configuration's source); `keyPath` is the first issue's key path.
 */
export class ConfigError extends Error {
  readonly source: string;
  readonly issues: readonly ConfigIssue[];
  readonly keyPath: string;

  constructor(source: string, issues: readonly ConfigIssue[]) {
    const lines = issues.map((i) => formatIssue(i));
    const message =
      lines.length === 1
        ? `invalid configuration (${source}): ${lines[0]}`
        : `invalid configuration (${source}): ${lines.length} problems:\n  ${lines.join('\n  ')}`;
    super(message);
    this.name = 'ConfigError';
    this.source = source;
    this.issues = Object.freeze(issues.map((i) => Object.freeze({ ...i })));
    this.keyPath = issues[0]?.keyPath ?? '';
  }
}

function formatIssue(issue: ConfigIssue): string {
  const where = issue.line === undefined ? '' : `line ${issue.line}, column ${issue.column ?? 0}: `;
  return issue.keyPath === '' ? `${where}${issue.problem}` : `${where}${issue.keyPath}: ${issue.problem}`;
}
