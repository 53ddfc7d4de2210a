// Package apiv1 forwards to github.com/aetherium/aetherium/apiv1 while branches
// written before the move land; it is deleted once none imports it.
package apiv1

import pub "github.com/aetherium/aetherium/apiv1"

type APIKey = pub.APIKey
type APIKeyList = pub.APIKeyList
type Accepted = pub.Accepted
type AuditEntry = pub.AuditEntry
type AuditList = pub.AuditList
type ErrorBody = pub.ErrorBody
type ErrorDetail = pub.ErrorDetail
type Event = pub.Event
type ExecEvent = pub.ExecEvent
type ExecExit = pub.ExecExit
type ExecRequest = pub.ExecRequest
type Execution = pub.Execution
type ExecutionList = pub.ExecutionList
type FileWritten = pub.FileWritten
type Job = pub.Job
type JobDetail = pub.JobDetail
type KeyCreated = pub.KeyCreated
type KeyRequest = pub.KeyRequest
type LogPage = pub.LogPage
type LogQuery = pub.LogQuery
type LogRecord = pub.LogRecord
type LogStreamMessage = pub.LogStreamMessage
type Project = pub.Project
type ProjectList = pub.ProjectList
type ProjectRequest = pub.ProjectRequest
type PtyMessage = pub.PtyMessage
type Quota = pub.Quota
type Session = pub.Session
type SnapshotAccepted = pub.SnapshotAccepted
type Task = pub.Task
type TaskList = pub.TaskList
type Template = pub.Template
type TemplateAccepted = pub.TemplateAccepted
type TemplateList = pub.TemplateList
type VM = pub.VM
type VMList = pub.VMList
type Worker = pub.Worker
type WorkerList = pub.WorkerList

const ExecEnd = pub.ExecEnd
const ExecError = pub.ExecError
const ExecStderr = pub.ExecStderr
const ExecStdout = pub.ExecStdout
const MaxExecTimeout = pub.MaxExecTimeout
const PtyError = pub.PtyError
const PtyExit = pub.PtyExit
const PtyResize = pub.PtyResize
const PtySignal = pub.PtySignal
