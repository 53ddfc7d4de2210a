// Wire types of the REST API v1, as internal/api/openapi.json's schemas name
// them (test/openapi.test.js checks each field list against the document).

/** A sandbox (schema VM). */
export interface VM {
  id: string;
  project_id: string;
  name: string;
  status: string;
  runtime: string;
  runtime_id?: string;
  ip_address?: string;
  worker_id?: string;
  image: string;
  vcpus: number;
  memory_mb: number;
  additional_tools: string[];
  tool_versions: Record<string, string>;
  error?: string;
  created_at: string;
  updated_at: string;
  template?: string;
  tools_installed: Record<string, string>;
  expires_at?: string;
  idle_timeout_seconds?: number;
  last_active_at?: string;
  on_expire: string;
  egress?: string;
}

/** The body of createSandbox (schema CreateVM); name is required. */
export interface CreateVM {
  name: string;
  vcpus?: number;
  memory_mb?: number;
  image?: string;
  additional_tools?: string[];
  tool_versions?: Record<string, string>;
  template?: string;
  keep_on_failure?: boolean;
  timeout_seconds?: number;
  idle_timeout_seconds?: number;
  on_expire?: "delete" | "pause";
  egress?: string;
}

/** A command (schema Exec): a shell line when args is absent, unless shell is false. */
export interface Exec {
  command: string;
  args?: string[];
  /** false runs command as the program even with no args (no /bin/sh -c); true with args is a 400. */
  shell?: boolean;
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  timeout_seconds?: number;
  /** Start and answer the PID at once (use Client.startProcess). */
  background?: boolean;
  /** Keep the command running when the stream is abandoned; read its output with processOutput. */
  keep_running?: boolean;
}

/** A queued request's answer (schema Accepted). */
export interface Accepted {
  task_id: string;
  vm_id?: string;
  job_id?: string;
  status: string;
}

/** A unit of asynchronous work (schema Task). */
export interface Task {
  id: string;
  project_id: string;
  type: string;
  status: string;
  priority: string;
  vm_id?: string;
  payload: unknown;
  result?: unknown;
  progress?: string;
  error?: string;
  retry_count: number;
  max_retries: number;
  worker_id?: string;
  created_at: string;
  updated_at: string;
  started_at?: string;
  completed_at?: string;
}

/** A command's record (schema Execution). */
export interface Execution {
  id: string;
  project_id: string;
  vm_id: string;
  task_id?: string;
  job_id?: string;
  command: string;
  args: string[];
  /** true: ran as a /bin/sh -c line; false: as the program; absent: unknown (recorded before Aetherium kept it). */
  shell?: boolean;
  exit_code: number | null;
  signal?: string;
  timed_out: boolean;
  error?: string;
  stdout: string;
  stderr: string;
  stdout_truncated: boolean;
  stderr_truncated: boolean;
  started_at: string;
  completed_at?: string;
  duration_ms: number;
}

/** Commands run in order in one sandbox (schema Job). */
export interface Job {
  id: string;
  project_id: string;
  vm_id: string;
  task_id: string;
  status: string;
  commands: string[];
  error?: string;
  created_at: string;
  started_at?: string;
  completed_at?: string;
}

/** A prepared image (schema Template). */
export interface Template {
  id: string;
  project_id: string;
  name: string;
  status: string;
  spec: unknown;
  spec_hash: string;
  image?: string;
  tools_installed: Record<string, string>;
  worker_id?: string;
  task_id?: string;
  error?: string;
  created_at: string;
  updated_at: string;
  pool_size: number;
}

/** The body of createTemplate (schema CreateTemplate). */
export interface CreateTemplate {
  name: string;
  base?: string;
  tools?: string[];
  tool_versions?: Record<string, string>;
  setup?: string[];
  pool_size?: number;
  egress?: string;
}

/** A task or sandbox state change (schema Event). */
export interface AetherEvent {
  kind: "task" | "vm";
  status: string;
  task_type?: string;
  task_id?: string;
  vm_id?: string;
  project_id: string;
  error?: string;
  progress?: string;
  time: string;
}

/** A project's limits; 0 means none (schema Quota). */
export interface Quota {
  sandboxes?: number;
  vcpus?: number;
  memory_mb?: number;
  templates?: number;
  pool_size?: number;
  execs?: number;
}

/** A tenant (schema Project). */
export interface Project {
  id: string;
  name: string;
  quota: Quota;
  created_at: string;
}

/** A public preview token of one sandbox port (schema Preview); token and token_url only on creation. */
export interface Preview {
  id: string;
  vm_id: string;
  port: number;
  url: string;
  token?: string;
  token_url?: string;
  created_at: string;
  expires_at: string;
}

/** One log line with its labels (schema LogRecord). */
export interface LogRecord {
  id: number;
  time: string;
  project?: string;
  vm_id?: string;
  task_id?: string;
  execution_id?: string;
  stream: string;
  level?: string;
  line: string;
  truncated?: boolean;
}

/** The body of queryLogs (schema LogQuery). */
export interface LogQuery {
  vm_id?: string;
  task_id?: string;
  execution_id?: string;
  stream?: string;
  level?: string;
  since?: string;
  until?: string;
  contains?: string;
  limit?: number;
  direction?: "backward" | "forward";
  cursor?: string;
}

/** One page of log records (schema LogPage). */
export interface LogPage {
  records: LogRecord[];
  next?: string;
}

/** A process started with background or keep_running (schema Process). */
export interface Process {
  pid: number;
  argv: string[];
  started_at: string;
  running: boolean;
  exit_code?: number;
  signal?: string;
  timed_out?: boolean;
  output_bytes: number;
  dropped: number;
}

/** One directory entry, as lstat sees it (schema DirEntry). */
export interface DirEntry {
  name: string;
  type: "file" | "dir" | "symlink" | "other";
  size: number;
  mode: number;
  mtime: string;
  target?: string;
}

/** A directory listing (schema DirListing). */
export interface DirListing {
  path: string;
  entries: DirEntry[];
  truncated: boolean;
}

/** One change under a watched directory (schema FileEvent). */
export interface FileEvent {
  op: "create" | "write" | "remove" | "rename" | "overflow";
  path: string;
  dir?: boolean;
}
