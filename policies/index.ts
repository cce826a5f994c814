/**
 * Gantry's resource model: YAML kinds with their zod schemas, quantities, GPU models, the price catalog,
 * and validation with exact source locations.
 *
 * @example
 * import { validatePaths, formatProblem } from '../policies/index.ts';
 * const { problems, platform } = validatePaths(['examples/']);
 * problems.forEach((p) => console.log(formatProblem(p)));
 * console.log(platform.pools.map((p) => `${p.id} $${p.price}/h`));
 */
export { CatalogError, PolicyError, QuantityError, ValidationError, formatProblem } from './errors.ts';
export type { Problem } from './errors.ts';
export { GPU_MODELS, gpuModelNames, isGpuModel, normalizeGpuModel } from './gpu.ts';
export type { GpuModel } from './gpu.ts';
export {
  GPU_SLICE,
  formatCpu,
  formatDuration,
  formatGpu,
  formatMemory,
  parseCpu,
  parseDuration,
  parseGpu,
  parseMemory,
} from './quantities.ts';
export type { GpuOption } from './quantities.ts';
export { API_VERSION, KINDS, MAX_GANG_NODES, resourcesSpec } from './kinds.ts';
export type {
  CapacityType,
  ClusterDoc,
  GantryDoc,
  KindName,
  PoolSpec,
  PriceCatalogDoc,
  Quota,
  ResourcePolicyDoc,
  ResourceProfileDoc,
  ResourcesSpec,
  SpotPreference,
  WorkloadDoc,
} from './kinds.ts';
export { formatPath, loadDocuments, parseDocuments } from './load.ts';
export type { LoadedDoc, LoadResult } from './load.ts';
export { DEFAULT_SPOT_INTERRUPTION_RATE, buildPlatform } from './platform.ts';
export type { Cluster, Platform, Policy, Pool, Profile } from './platform.ts';
export { loadPlatform, summarizeDoc, validatePaths } from './validate.ts';
export type { Validation } from './validate.ts';
export { closest } from './suggest.ts';
export {
  BUILTIN_CATALOG_META,
  CatalogEntryError,
  catalogEntrySchema,
  catalogFileSchema,
  catalogOverrideSchema,
  loadBuiltinCatalog,
  PriceCatalog,
} from './catalog/catalog.ts';
export type {
  CatalogEntry,
  CatalogFilter,
  CatalogMeta,
  CatalogOffer,
  CatalogOverride,
} from './catalog/catalog.ts';
export { FALLBACK_RESOURCES, ResolveError, resolveResources } from './resources.ts';
export type { ResolvedResources } from './resources.ts';
export { loadWorkload, requestLine } from './workload.ts';
export type { WorkloadTask } from './workload.ts';
