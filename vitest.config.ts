// Unit tests sit beside their source and touch no network; integration and end-to-end tests live in test/
// and use the real engines. Each test file runs in its own process: the embedded ClickHouse allows one data
// directory per process.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 120_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['{api,bench,clickhouse,control,core,ingest,scripts,worker}/**/*.test.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          globalSetup: ['test/helpers/global-setup.ts'],
          testTimeout: 300_000,
        },
      },
      {
        extends: true,
        test: {
          // Fault tests kill processes and break storage on purpose; `npm run test:faults` runs them bigger.
          name: 'faults',
          include: ['test/faults/**/*.test.ts'],
          globalSetup: ['test/helpers/global-setup.ts'],
          testTimeout: 900_000,
        },
      },
    ],
  },
});
