import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The console's pages, built into console/dist, which the gantry processes serve.
export default defineConfig({
  root: import.meta.dirname,
  plugins: [react()],
  logLevel: 'warn',
  build: { outDir: '../dist', emptyOutDir: true, chunkSizeWarningLimit: 1500 },
});
