package image

// Unprivileged is unprivileged, for the tests of package image_test.
var Unprivileged = unprivileged
