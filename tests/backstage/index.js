// A real Backstage backend (new backend system) with the catalog, MCP Actions and auth plugins, started
// as plain CommonJS for mcp-tap's end-to-end tests:
//   node index.js --config app-config.yaml --config <per-test overrides>
const { createBackend } = require('@backstage/backend-defaults');

const backend = createBackend();
backend.add(require('@backstage/plugin-catalog-backend').default);
backend.add(require('@backstage/plugin-mcp-actions-backend').default);
// The auth backend with the guest provider: real user tokens (JWTs) for the OAuth-client tests.
backend.add(require('@backstage/plugin-auth-backend').default);
backend.add(require('@backstage/plugin-auth-backend-module-guest-provider').default);
backend.start();
