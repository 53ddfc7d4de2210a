package slack

import "testing"

func TestMrkdwnEscapes(t *testing.T) {
	t.Parallel()
	if got, want := mrkdwn("**done** <!channel> a&b <http://x|y>"), "*done* &lt;!channel&gt; a&amp;b &lt;http://x|y&gt;"; got != want {
		t.Errorf("mrkdwn = %q, want %q", got, want)
	}
}
