package bench

// Contender is one registry under test.
type Contender struct {
	// Name is the value of the impl key in benchmark names.
	Name string
	// New builds the contender.
	New func(Config) Registry
	// Manual reports whether the contender reads Config.Clock. The others
	// read the system clock and implement TTLCreator.
	Manual bool
	// Sessions reports whether the contender holds real sessions (roster's
	// session.Manager); the workloads that measure the registry alone, at
	// 1M entries, leave it out.
	Sessions bool
}

// Contenders lists every contender, hand-rolled first: benchstat's ratios
// are to the first column.
var Contenders = []Contender{
	{Name: "handrolled", New: NewHandrolled, Manual: true},
	{Name: "syncmap", New: NewSyncMap, Manual: true},
	{Name: "xsync", New: NewXsync, Manual: true},
	{Name: "otter", New: NewOtter, Manual: true},
	{Name: "ttlcache", New: NewTTLCache},
	{Name: "gocache", New: NewGoCache},
	{Name: "roster-core-xsync", New: NewRosterCoreXsync, Manual: true},
	{Name: "roster-core", New: NewRosterCore, Manual: true},
	{Name: "roster", New: NewRosterManager, Manual: true, Sessions: true},
}

// Registries returns the contenders that hold bare entries, without real
// sessions.
func Registries() []Contender {
	var out []Contender
	for _, c := range Contenders {
		if !c.Sessions {
			out = append(out, c)
		}
	}
	return out
}
