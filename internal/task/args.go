package task

import (
	"slices"
	"strings"
	"time"

	"github.com/aetherium/aetherium/internal/errdefs"
	"github.com/aetherium/aetherium/internal/queue"
)

// VMCreateArgs makes the task's sandbox, whose row is inserted with the task
// (SubmitParams.VM), and installs its tools. Result: *VMResult.
type VMCreateArgs struct {
	// FromPool records a create answered from a template's warm pool: the
	// task is submitted already done (SubmitParams.Result) and never runs.
	FromPool bool `json:"from_pool,omitempty"`
	// KeepOnFailure keeps a sandbox whose tool installation failed, marked
	// failed, for inspection; by default it is deleted.
	KeepOnFailure bool `json:"keep_on_failure,omitempty"`
	// Pool marks a warm-pool sandbox: it ends pooled, not running, and is
	// made at low priority so refills never delay users' creates.
	Pool bool `json:"pool,omitempty"`
}

// Kind implements Args.
func (VMCreateArgs) Kind() string { return KindVMCreate }

// Policy implements Args: high priority, 3 retries, 5 minutes (pool
// sandboxes: low priority). A create that installs tools needs longer: see
// CreateTimeout.
func (a VMCreateArgs) Policy() Policy {
	p := policies[KindVMCreate]
	if a.Pool {
		p.Priority = queue.PriorityLow
	}
	return p
}

// VMDeleteArgs removes the task's sandbox and marks its row deleted.
// Result: *VMResult.
type VMDeleteArgs struct {
	// Reason says why the system deleted the sandbox (its lifetime ended);
	// empty when a user asked.
	Reason string `json:"reason,omitempty"`
}

// Kind implements Args.
func (VMDeleteArgs) Kind() string { return KindVMDelete }

// Policy implements Args: critical priority, 5 retries, 2 minutes.
func (VMDeleteArgs) Policy() Policy { return policies[KindVMDelete] }

// VMExecuteArgs runs one command in the task's sandbox, queued (the direct
// path is the exec endpoint). It is never retried, and a redelivery after a
// crash reports the first run instead of running again. Result: *ExecResult.
type VMExecuteArgs struct {
	ExecParams
}

// Kind implements Args.
func (VMExecuteArgs) Kind() string { return KindVMExecute }

// Policy implements Args: default priority, no retries, and the command's own
// timeout plus 2 minutes to reach the sandbox and record the result (30
// minutes when the command has none).
func (a VMExecuteArgs) Policy() Policy {
	p := policies[KindVMExecute]
	if a.TimeoutSeconds > 0 {
		p.Timeout = time.Duration(a.TimeoutSeconds)*time.Second + execSlack
	}
	return p
}

// JobRunArgs runs a job's commands in order in its sandbox; the job row is
// inserted with the task (SubmitParams.Job). Result: *JobResult.
type JobRunArgs struct {
	JobID string `json:"job_id"`
	// Reports are told when the job ends (an integration:report task each,
	// PhaseFinished); empty for jobs users create.
	Reports []Report `json:"reports,omitempty"`
	// DeleteVM deletes the job's sandbox when the job ends: a job an
	// integration started runs in a fresh sandbox of its own.
	DeleteVM bool `json:"delete_vm,omitempty"`
}

// Kind implements Args.
func (JobRunArgs) Kind() string { return KindJobRun }

// Policy implements Args: default priority, no retries, 2 hours.
func (JobRunArgs) Policy() Policy { return policies[KindJobRun] }

// ImageBuildArgs builds a Debian image with mmdebstrap and imports it into
// the worker's Docker. It is also the body of POST /api/v1/images.
// Result: *ImageBuildResult.
type ImageBuildArgs struct {
	// Ref is the Docker reference to tag the result with; empty means the
	// default base image.
	Ref string `json:"ref"`
	// Suite is the Debian release; empty means bookworm.
	Suite string `json:"suite"`
	// Include lists extra Debian packages; nil means the builder's default set.
	Include []string `json:"include"`
	// Mirror is the Debian mirror; empty means deb.debian.org.
	Mirror string `json:"mirror"`
	// Force rebuilds even when the image exists.
	Force bool `json:"force"`
}

// Kind implements Args.
func (ImageBuildArgs) Kind() string { return KindImageBuild }

// Policy implements Args: low priority, 1 retry, 30 minutes.
func (ImageBuildArgs) Policy() Policy { return policies[KindImageBuild] }

// ImageSuites are the Debian releases images may be built from: the ones
// Debian's archive keyring (debian-archive-keyring) signs, so every build's
// Release file is checked against it (image.Keyring).
var ImageSuites = []string{"bookworm", "trixie", "bullseye"}

// ImageNamespace starts every image reference a build may tag: built images
// never replace an image the platform does not own.
const ImageNamespace = "aetherium/"

// Validate reports a spec the builder must not run (its values become
// mmdebstrap arguments and image references), naming the field: a bad
// package name is ErrInvalidArgument; a suite outside ImageSuites, a mirror
// (it comes from the server's configuration only) or a reference outside
// ImageNamespace is ErrUnprocessable.
func (a *ImageBuildArgs) Validate() error {
	for _, p := range a.Include {
		if p == "" || strings.ContainsAny(p, " ,;'\"$`\\") || strings.HasPrefix(p, "-") {
			return errdefs.InvalidArgument("include: %q is not a package name", p)
		}
	}
	if a.Suite != "" && !slices.Contains(ImageSuites, a.Suite) {
		return errdefs.Unprocessable("suite: %q is not one of %s (releases Debian's archive keyring verifies)", a.Suite, strings.Join(ImageSuites, ", "))
	}
	if a.Mirror != "" {
		return errdefs.Unprocessable("mirror: the Debian mirror comes from the server's configuration, not the request")
	}
	if a.Ref != "" && (!strings.HasPrefix(a.Ref, ImageNamespace) || strings.ContainsAny(a.Ref, " ;'\"$`\\")) {
		return errdefs.Unprocessable("ref: %q must be an image reference under %s", a.Ref, ImageNamespace)
	}
	return nil
}

// TemplateBuildArgs builds a template in the task's build sandbox (both rows
// are inserted with the task). Result: *TemplateResult.
type TemplateBuildArgs struct {
	TemplateID string `json:"template_id"`
}

// Kind implements Args.
func (TemplateBuildArgs) Kind() string { return KindTemplateBuild }

// Policy implements Args: low priority, 1 retry, 30 minutes; a template that
// installs tools needs longer: see CreateTimeout.
func (TemplateBuildArgs) Policy() Policy { return policies[KindTemplateBuild] }

// TemplateDeleteArgs removes a template's pool, its image on the worker that
// holds it, then its row. Result: *TemplateDeleteResult.
type TemplateDeleteArgs struct {
	TemplateID string `json:"template_id"`
}

// Kind implements Args.
func (TemplateDeleteArgs) Kind() string { return KindTemplateDelete }

// Policy implements Args: default priority, 3 retries, 2 minutes.
func (TemplateDeleteArgs) Policy() Policy { return policies[KindTemplateDelete] }

// VMPauseArgs freezes the task's sandbox, keeping its memory.
// Result: *VMResult.
type VMPauseArgs struct {
	// Reason says why the system paused the sandbox (its lifetime ended);
	// empty when a user asked.
	Reason string `json:"reason,omitempty"`
}

// Kind implements Args.
func (VMPauseArgs) Kind() string { return KindVMPause }

// Policy implements Args: high priority, 3 retries, 1 minute.
func (VMPauseArgs) Policy() Policy { return policies[KindVMPause] }

// VMResumeArgs thaws the task's paused sandbox. Result: *VMResult.
type VMResumeArgs struct{}

// Kind implements Args.
func (VMResumeArgs) Kind() string { return KindVMResume }

// Policy implements Args: critical priority, 3 retries, 1 minute.
func (VMResumeArgs) Policy() Policy { return policies[KindVMResume] }

// VMSnapshotArgs saves the task's sandbox's filesystem as a ready template,
// whose row is inserted with the task (SubmitParams.Template).
// Result: *TemplateResult.
type VMSnapshotArgs struct {
	TemplateID string `json:"template_id"`
}

// Kind implements Args.
func (VMSnapshotArgs) Kind() string { return KindVMSnapshot }

// Policy implements Args: default priority, 1 retry, 15 minutes.
func (VMSnapshotArgs) Policy() Policy { return policies[KindVMSnapshot] }

// VMResult is the result of vm:create, vm:delete, vm:pause and vm:resume.
type VMResult struct {
	VMID      string `json:"vm_id"`
	Status    string `json:"status"`
	RuntimeID string `json:"runtime_id,omitempty"`
}

// JobResult is the result of job:run.
type JobResult struct {
	JobID    string `json:"job_id"`
	Status   string `json:"status"`
	Executed int    `json:"executed"`
}

// ImageBuildResult is the result of image:build.
type ImageBuildResult struct {
	Ref    string `json:"ref"`
	ID     string `json:"id"`
	Cached bool   `json:"cached"`
}

// TemplateResult is the result of template:build and vm:snapshot.
type TemplateResult struct {
	Template       string            `json:"template"`
	Image          string            `json:"image"`
	ToolsInstalled map[string]string `json:"tools_installed"`
}

// TemplateDeleteResult is the result of template:delete. Image is empty when
// the template was already gone.
type TemplateDeleteResult struct {
	TemplateID string `json:"template_id"`
	Image      string `json:"image,omitempty"`
}

var (
	_ Args = VMCreateArgs{}
	_ Args = VMDeleteArgs{}
	_ Args = VMExecuteArgs{}
	_ Args = JobRunArgs{}
	_ Args = ImageBuildArgs{}
	_ Args = TemplateBuildArgs{}
	_ Args = TemplateDeleteArgs{}
	_ Args = VMPauseArgs{}
	_ Args = VMResumeArgs{}
	_ Args = VMSnapshotArgs{}
)
