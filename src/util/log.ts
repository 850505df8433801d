/**
 * Logging in CoreDNS's shape: `[INFO] plugin/reload: ...` on stdout, `[ERROR] ...` on stderr.
 * CoreDNS (via its log package) prints no timestamp; node-cache's own lines carry Go's
 * `2006/01/02 15:04:05` prefix, which `withTimestamp` reproduces for agent messages.
 */
import type { Logger } from '../plugin.ts';

let quiet = false;

/** `-quiet`: suppress INFO lines (warnings and errors still go out). */
export function setQuiet(q: boolean): void {
  quiet = q;
}

function goTimestamp(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}/${p(d.getMonth() + 1)}/${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function make(prefix: string, withTimestamp: boolean): Logger {
  const pre = prefix ? `${prefix}: ` : '';
  const ts = () => (withTimestamp ? goTimestamp() + ' ' : '');
  return {
    info(msg) {
      if (!quiet) process.stdout.write(`${ts()}[INFO] ${pre}${msg}\n`);
    },
    warn(msg) {
      process.stdout.write(`${ts()}[WARNING] ${pre}${msg}\n`);
    },
    error(msg) {
      process.stderr.write(`${ts()}[ERROR] ${pre}${msg}\n`);
    },
    debug(msg) {
      if (process.env.NLD_DEBUG) process.stdout.write(`${ts()}[DEBUG] ${pre}${msg}\n`);
    },
  };
}

/** Logger for a plugin: lines read `[INFO] plugin/<name>: ...`. */
export function pluginLogger(name: string): Logger {
  return make(`plugin/${name}`, false);
}

/** Logger without a plugin prefix. */
export const log: Logger = make('', false);

/** node-cache style lines: `2020/11/10 01:59:23 [INFO] ...`. */
export const agentLog: Logger = make('', true);
