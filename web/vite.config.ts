// Vite builds the single-page app into dist/, which the ingress (nginx) serves at "/".
// No React plugin: esbuild compiles TSX (tsconfig "jsx": "react-jsx"), which keeps the
// dependency tree small and installable with `npm ci --ignore-scripts`.
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/',
  // The app view's chunk holds nebula.js and four charts (~6 MB, loaded only on /apps/…).
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: true, target: 'es2022', chunkSizeWarningLimit: 8000 },
  server: {
    // `npm run dev` against a running local stack: TSR_URL=http://127.0.0.1:8080 npm run dev
    proxy: process.env.TSR_URL ? { '/api': process.env.TSR_URL, '/app': { target: process.env.TSR_URL, ws: true } } : undefined,
  },
});
