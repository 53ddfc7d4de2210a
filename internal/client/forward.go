// Package client forwards to github.com/aetherium/aetherium/client while branches
// written before the move land; it is deleted once none imports it.
package client

import pub "github.com/aetherium/aetherium/client"

type Client = pub.Client
type CreateVMRequest = pub.CreateVMRequest
type Error = pub.Error
type ImageSpec = pub.ImageSpec
type PtyOptions = pub.PtyOptions
type RunResult = pub.RunResult
type Sandbox = pub.Sandbox
type TemplateRequest = pub.TemplateRequest
type Terminal = pub.Terminal

const AdminKeyFile = pub.AdminKeyFile
const ProjectHeader = pub.ProjectHeader

var DiscoverKey = pub.DiscoverKey
var IsNotFound = pub.IsNotFound
var IsUnauthenticated = pub.IsUnauthenticated
var New = pub.New
var NewInternal = pub.NewInternal
