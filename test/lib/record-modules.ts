/**
 * Test preload (`node --import ./test/lib/record-modules.ts`): appends the URL of every module the
 * process resolves (ES `import`, dynamic `import()`, `require`) to the file named by
 * $RECORD_MODULES_OUT, one per line, as it happens. `process.getBuiltinModule()` is not seen.
 */
import { appendFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

const out = process.env.RECORD_MODULES_OUT;
if (out !== undefined && out !== '') {
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const r = nextResolve(specifier, context);
      appendFileSync(out, `${r.url}\n`);
      return r;
    },
  });
}
