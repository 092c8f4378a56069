// ts-jest in ESM mode, as GitHub's TypeScript action template does.
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleFileExtensions: ['ts', 'js', 'mjs'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': [
      'ts-jest',
      { useESM: true, tsconfig: 'tsconfig.json', diagnostics: { ignoreCodes: ['TS151001'] } }
    ]
  },
  testMatch: ['**/__tests__/**/*.test.ts'],
  testPathIgnorePatterns: ['/dist/', '/node_modules/'],
  // Integration tests share one machine's loopback hosts and 2 cores: run files one at a time.
  maxWorkers: 1,
  testTimeout: 120000,
  verbose: true,
  reporters: ['default', '<rootDir>/scripts/summary-reporter.cjs']
}
