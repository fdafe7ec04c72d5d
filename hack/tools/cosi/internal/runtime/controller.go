// Package runtime runs the COSI v1alpha1 listeners (controller: BucketClaim; sidecar: Bucket and
// BucketAccess) behind informers, a rate-limited retry queue and Lease-based leader election.
//
// It replaces the upstream internal module of the v0.2.2 release, which is not available from the Go
// module proxy. Behaviour the listeners rely on: each informer event calls Add / Update / Delete on the
// registered listener once; a listener error retries that call with exponential backoff (5 ms .. 5 min);
// clients and the event recorder are injected before the informers start.
package runtime

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/viper"
	corev1 "k8s.io/api/core/v1"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"sigs.k8s.io/container-object-storage-interface/client/apis/objectstorage/v1alpha1"
	bucketclientset "sigs.k8s.io/container-object-storage-interface/client/clientset/versioned"
	bucketscheme "sigs.k8s.io/container-object-storage-interface/client/clientset/versioned/scheme"
	bucketinformers "sigs.k8s.io/container-object-storage-interface/client/informers/externalversions"
)

// clientInjector is what every upstream listener accepts before it starts.
type clientInjector interface {
	InitializeKubeClient(kubernetes.Interface)
	InitializeBucketClient(bucketclientset.Interface)
	InitializeEventRecorder(record.EventRecorder)
}

// BucketListener handles Bucket events (sidecar).
type BucketListener interface {
	clientInjector
	Add(ctx context.Context, b *v1alpha1.Bucket) error
	Update(ctx context.Context, old, new *v1alpha1.Bucket) error
	Delete(ctx context.Context, b *v1alpha1.Bucket) error
}

// BucketClaimListener handles BucketClaim events (controller).
type BucketClaimListener interface {
	clientInjector
	Add(ctx context.Context, b *v1alpha1.BucketClaim) error
	Update(ctx context.Context, old, new *v1alpha1.BucketClaim) error
	Delete(ctx context.Context, b *v1alpha1.BucketClaim) error
}

// BucketAccessListener handles BucketAccess events (sidecar).
type BucketAccessListener interface {
	clientInjector
	Add(ctx context.Context, b *v1alpha1.BucketAccess) error
	Update(ctx context.Context, old, new *v1alpha1.BucketAccess) error
	Delete(ctx context.Context, b *v1alpha1.BucketAccess) error
}

// op is one listener call; retried as a unit until it succeeds.
type op struct {
	what string
	run  func(ctx context.Context) error
}

// ObjectStorageController wires listeners to informers.
type ObjectStorageController struct {
	identity       string
	leaderLockName string
	threads        int

	kubeClient   kubernetes.Interface
	bucketClient bucketclientset.Interface
	recorder     record.EventRecorder
	queue        workqueue.TypedRateLimitingInterface[*op]

	bucketListener       BucketListener
	bucketClaimListener  BucketClaimListener
	bucketAccessListener BucketAccessListener
}

// restConfig: --kubeconfig (bound through viper by the commands), then $KUBECONFIG, then in-cluster.
func restConfig() (*rest.Config, error) {
	path := viper.GetString("kubeconfig")
	if path == "" {
		path = os.Getenv("KUBECONFIG")
	}
	if path == "" {
		return rest.InClusterConfig()
	}
	return clientcmd.BuildConfigFromFlags("", path)
}

// NewDefaultObjectStorageController builds clients from the kubeconfig; threads is the worker count.
func NewDefaultObjectStorageController(identity, leaderLockName string, threads int) (*ObjectStorageController, error) {
	cfg, err := restConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes client config: %w", err)
	}
	kubeClient, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	bucketClient, err := bucketclientset.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	utilruntime.Must(bucketscheme.AddToScheme(scheme.Scheme))
	broadcaster := record.NewBroadcaster()
	broadcaster.StartLogging(klog.Infof)
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kubeClient.CoreV1().Events("")})
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: identity})

	limiter := workqueue.NewTypedItemExponentialFailureRateLimiter[*op](5*time.Millisecond, 5*time.Minute)
	if threads < 1 {
		threads = 1
	}
	return &ObjectStorageController{
		identity:       identity,
		leaderLockName: leaderLockName,
		threads:        threads,
		kubeClient:     kubeClient,
		bucketClient:   bucketClient,
		recorder:       recorder,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(limiter,
			workqueue.TypedRateLimitingQueueConfig[*op]{Name: identity}),
	}, nil
}

func (c *ObjectStorageController) inject(l clientInjector) {
	l.InitializeKubeClient(c.kubeClient)
	l.InitializeBucketClient(c.bucketClient)
	l.InitializeEventRecorder(c.recorder)
}

// AddBucketListener registers the Bucket listener.
func (c *ObjectStorageController) AddBucketListener(l BucketListener) {
	c.inject(l)
	c.bucketListener = l
}

// AddBucketClaimListener registers the BucketClaim listener.
func (c *ObjectStorageController) AddBucketClaimListener(l BucketClaimListener) {
	c.inject(l)
	c.bucketClaimListener = l
}

// AddBucketAccessListener registers the BucketAccess listener.
func (c *ObjectStorageController) AddBucketAccessListener(l BucketAccessListener) {
	c.inject(l)
	c.bucketAccessListener = l
}

// handlers turns informer callbacks of type T into queued listener calls.
func handlers[T any](c *ObjectStorageController, kind string,
	add func(context.Context, T) error, update func(context.Context, T, T) error,
	del func(context.Context, T) error) cache.ResourceEventHandlerFuncs {
	name := func(obj any) string {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			return key
		}
		return "?"
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			o, ok := obj.(T)
			if !ok {
				return
			}
			c.queue.Add(&op{what: "add " + kind + " " + name(obj), run: func(ctx context.Context) error { return add(ctx, o) }})
		},
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(T)
			n, ok2 := newObj.(T)
			if !ok1 || !ok2 {
				return
			}
			c.queue.Add(&op{what: "update " + kind + " " + name(newObj), run: func(ctx context.Context) error { return update(ctx, o, n) }})
		},
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			o, ok := obj.(T)
			if !ok {
				return
			}
			c.queue.Add(&op{what: "delete " + kind + " " + name(obj), run: func(ctx context.Context) error { return del(ctx, o) }})
		},
	}
}

func (c *ObjectStorageController) worker(ctx context.Context) {
	for {
		item, shutdown := c.queue.Get()
		if shutdown {
			return
		}
		err := item.run(ctx)
		if err != nil {
			klog.ErrorS(err, "listener call failed, retrying", "op", item.what, "retries", c.queue.NumRequeues(item))
			c.queue.AddRateLimited(item)
		} else {
			c.queue.Forget(item)
		}
		c.queue.Done(item)
	}
}

func (c *ObjectStorageController) runWorkers(ctx context.Context) {
	factory := bucketinformers.NewSharedInformerFactory(c.bucketClient, 0)
	api := factory.Objectstorage().V1alpha1()
	if l := c.bucketListener; l != nil {
		_, _ = api.Buckets().Informer().AddEventHandler(handlers(c, "Bucket", l.Add, l.Update, l.Delete))
	}
	if l := c.bucketClaimListener; l != nil {
		_, _ = api.BucketClaims().Informer().AddEventHandler(handlers(c, "BucketClaim", l.Add, l.Update, l.Delete))
	}
	if l := c.bucketAccessListener; l != nil {
		_, _ = api.BucketAccesses().Informer().AddEventHandler(handlers(c, "BucketAccess", l.Add, l.Update, l.Delete))
	}
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			klog.ErrorS(nil, "informer cache did not sync", "type", typ)
		}
	}
	for i := 0; i < c.threads; i++ {
		go wait.UntilWithContext(ctx, c.worker, time.Second)
	}
	klog.InfoS("COSI listeners running", "identity", c.identity, "workers", c.threads)
	<-ctx.Done()
	c.queue.ShutDown()
}

// Run blocks until ctx ends. Leader election (a Lease named leaderLockName in $POD_NAMESPACE, default
// "default") is on unless $COSI_LEADER_ELECTION is "false".
func (c *ObjectStorageController) Run(ctx context.Context) error {
	if strings.EqualFold(os.Getenv("COSI_LEADER_ELECTION"), "false") {
		c.runWorkers(ctx)
		return nil
	}
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = "default"
	}
	host, _ := os.Hostname()
	id := fmt.Sprintf("%s_%s_%d", c.identity, host, os.Getpid())
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, ns, strings.ToLower(c.leaderLockName),
		c.kubeClient.CoreV1(), c.kubeClient.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: id})
	if err != nil {
		return err
	}
	leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
		Lock:            lock,
		ReleaseOnCancel: true,
		LeaseDuration:   15 * time.Second,
		RenewDeadline:   10 * time.Second,
		RetryPeriod:     2 * time.Second,
		Name:            c.leaderLockName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: c.runWorkers,
			OnStoppedLeading: func() { klog.InfoS("leadership lost or released", "identity", id) },
		},
	})
	return ctx.Err()
}
