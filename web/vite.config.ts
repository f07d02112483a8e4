import { defineConfig } from 'vitest/config';

// The server serves web/dist itself (src/http/assets.rs) under a strict CSP:
// `script-src 'self'; style-src 'self'`. So the build must emit no inline script or style:
// no modulepreload polyfill (it is inlined into the entry otherwise) and CSS as files.
export default defineConfig({
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    modulePreload: { polyfill: false },
    cssCodeSplit: false,
    assetsInlineLimit: 0,
    sourcemap: false,
    // three.js (the 3D preview) is a chunk of its own, loaded when a mesh is shown: ~590 kB.
    chunkSizeWarningLimit: 700,
  },
  server: {
    // `npm run dev` proxies the API to a local `articula serve --demo` (self-signed TLS).
    proxy: {
      '/api': { target: 'https://127.0.0.1:8443', changeOrigin: false, secure: false, ws: true },
    },
  },
  test: {
    include: ['tests/unit/**/*.test.ts'],
    environment: 'node',
  },
});
